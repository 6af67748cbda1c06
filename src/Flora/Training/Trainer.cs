using System.Diagnostics;
using Flora.Devices;
using Flora.Distributed;
using Flora.Backends;
using Flora.Data;
using Flora.Data.Corpora;
using Flora.Data.Tokenizers;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Nn.Models.HuggingFace;
using Flora.Optim;
using Flora.Reporting;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>Progress of a training run, for a progress bar.</summary>
/// <param name="Step">The step just completed (1-based).</param>
/// <param name="Steps">The run's last step (<see cref="TrainOptions.Steps"/>).</param>
/// <param name="Loss">
/// The step's training loss: the mean over its micro-batches (and over the ranks of a data-parallel run).
/// </param>
/// <param name="TokensPerSecond">Input tokens of the step, over all ranks, per second of its wall time.</param>
/// <param name="ValidationLoss">The validation loss when the step evaluated, else null.</param>
public readonly record struct TrainProgress(long Step, long Steps, double Loss, double TokensPerSecond, double? ValidationLoss);

/// <summary>Per-step times of <see cref="Trainer.MeasureSteps"/> (seconds, medians), the GEMM share and the share of each op.</summary>
/// <param name="Step">A whole step.</param>
/// <param name="Forward">Model and loss, over the step's micro-batches.</param>
/// <param name="Backward">Backward into the gradient pipeline.</param>
/// <param name="Optimizer">The pipeline's end of micro-batch: updates, and accumulation bookkeeping.</param>
/// <param name="GemmShare">The share of the profiled step spent in matrix products.</param>
/// <param name="TokensPerSecond">Input tokens of a step divided by the median step time.</param>
/// <param name="Ops">Each op's share of the profiled step, the largest first.</param>
/// <param name="Profile">The op profiler of the profiled step.</param>
/// <param name="ProfiledSeconds">
/// The duration of the profiled step (slower than the others: the profiler waits for every op).
/// </param>
public sealed record StepTimings(double Step, double Forward, double Backward, double Optimizer, double GemmShare, double TokensPerSecond,
    IReadOnlyList<(string Op, double Share)> Ops, Flora.Backends.OpProfiler? Profile = null, double ProfiledSeconds = 0);

/// <summary>
/// The outcome of a run; <c>Resamplings</c> counts the new random projections FLORA drew (per matrix: momentum transfers or
/// compressed-accumulation cycles), <c>TrainableParameters</c> the parameters that trained.
/// </summary>
/// <param name="FirstStep">The first step this call trained (1-based; the one after the checkpoint's on resume).</param>
/// <param name="LastStep">The last step trained.</param>
/// <param name="FinalTrainLoss">The mean training loss of the last 20 steps (NaN when no step ran).</param>
/// <param name="FinalValidationLoss">The last validation loss, or null.</param>
/// <param name="TokensPerSecond">Input tokens per second over the whole call.</param>
/// <param name="TokensSeen">Input tokens read, over all ranks (sources of encoder-decoders included).</param>
/// <param name="Seconds">Wall time of the call.</param>
/// <param name="Memory">The backend's memory ledger at the end: current and peak bytes per tag.</param>
/// <param name="OptimizerStateBytes">Bytes of optimizer state.</param>
/// <param name="ModelDescription">The model in one line.</param>
/// <param name="TaskDescription">The data in one line.</param>
/// <param name="OptimizerDescription">The optimizer and its settings in one line.</param>
/// <param name="LastCheckpoint">The directory of the last checkpoint written, or null.</param>
/// <param name="DataSeconds">Seconds spent getting batches.</param>
/// <param name="BestValidationLoss">
/// The lowest validation loss of the run (a resumed run's earlier rows included), or null.
/// </param>
/// <param name="BestStep">The step of <paramref name="BestValidationLoss"/> (0 without one).</param>
/// <param name="BestCheckpoint">RUN/best when <see cref="TrainOptions.KeepBest"/> wrote it, else null.</param>
/// <param name="DataParallel">The data-parallel report, or null in a single process.</param>
/// <param name="Resamplings">New random projections FLORA drew, per matrix.</param>
/// <param name="TrainableParameters">Elements of the parameters that trained.</param>
public sealed record TrainResult(
    long FirstStep, long LastStep, double FinalTrainLoss, double? FinalValidationLoss, double TokensPerSecond, long TokensSeen,
    double Seconds, MemorySnapshot Memory, long OptimizerStateBytes, string ModelDescription, string TaskDescription, string OptimizerDescription,
    string? LastCheckpoint, double DataSeconds = 0, double? BestValidationLoss = null, long BestStep = 0, string? BestCheckpoint = null,
    DataParallelReport? DataParallel = null, long Resamplings = 0, long TrainableParameters = 0);

/// <summary>
/// The training loop:
/// <code>
/// for step: lr = schedule(step)
///   for each of tau micro-batches: loss = CE(model(x), y); model.backward(pipeline); pipeline.EndMicroBatch()
///   (the output projection and the loss are fused: the logits exist a chunk of rows at a time)
///   log; evaluate every N steps; checkpoint every M steps
/// </code>
/// The gradient pipeline (issue 3) decides where gradients go (buffers, FLORA accumulators, immediate
/// updates). A NaN or infinite loss or gradient stops the run with the step and the parameter named;
/// cancellation (Ctrl+C) finishes the step, writes a checkpoint and stops.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly TrainOptions _options;
    private readonly IBackend _backend;
    private readonly LanguageModel _model;
    private readonly Optimizer _optimizer;
    private readonly GradientPipeline _pipeline;
    private readonly ITrainingTask _task;
    private readonly string _tokenizerIdentity;
    private readonly long _startStep;
    private readonly ICommunicator? _communicator;
    private readonly GradientReducer? _reducer;
    private readonly RunDirectory _run;
    private readonly RunLayout _layout;
    private readonly List<string> _notices = new();

    /// <summary>
    /// A new run, or (with <paramref name="resumeFrom"/>) the continuation of the run a checkpoint belongs to:
    /// then every setting comes from the checkpoint, except that <paramref name="options"/>' steps extend the
    /// run when they are more than the checkpoint's (the cosine schedule then stretches from that point on);
    /// fewer steps than the run's are an error, and 0 keeps the run's. A run directory with no checkpoint yet
    /// (killed while preparing) starts again from its run.json.
    /// <para>
    /// A new run needs a new or empty directory: one that holds another run is refused unless
    /// <paramref name="overwrite"/> moves that run aside. The run directory is locked while the trainer lives.
    /// <paramref name="cancel"/> stops the preparation between its phases (nothing is trained, no checkpoint written).
    /// </para>
    /// <para>
    /// With <paramref name="connect"/> the run is one rank of a data-parallel run: it is called with the backend
    /// and returns the rank's communicator, which the trainer then owns (<see cref="DataParallel"/>). Only the lead
    /// (rank 0, <paramref name="lead"/>) takes the run directory and writes to it; the other ranks read it.
    /// </para>
    /// </summary>
    public Trainer(TrainOptions options, string? resumeFrom = null, ITrainingTask? task = null, bool overwrite = false, CancellationToken cancel = default,
        Func<IBackend, ICommunicator>? connect = null, bool lead = true)
    {
        Tokenizer = null!;
        try
        {
            // Fine-tuning a Hugging Face model: its directory is checked whole (config, headers, shapes) before the run directory is touched.
            HfDirectory? huggingFace = resumeFrom is null && HfDirectory.IsModelDirectory(options.InitFrom) ? HfDirectory.Open(options.InitFrom!) : null;
            if (huggingFace is not null) options = options with { Model = HuggingFaceModel };
            else if (resumeFrom is null && options.Model == HuggingFaceModel)
                throw new ArgumentException($"model '{HuggingFaceModel}' is read from a Hugging Face model directory: give one with --init-from");
            var start = resumeFrom is null ? RunStart.Fresh(options, overwrite, _notices, lead) : RunStart.Resume(resumeFrom, options.Steps, _notices, lead);
            (_run, options) = (start.Directory, start.Options);
            CheckpointInfo? resume = start.Checkpoint;
            RunManifest? recorded = start.Recorded;
            if (resume is null && options.Model == HuggingFaceModel) huggingFace ??= HfDirectory.Open(options.InitFrom!);   // a run restarted before its first checkpoint
            _options = options;
            _backend = BackendFactory.Create(options.Device, precision: options.Precision);
            if (connect is not null)
            {
                _communicator = connect(_backend);
                _options = options = DataParallel.CheckWorldSize(options, resume, _communicator.WorldSize);
            }
            else DataParallel.CheckWorldSize(options, resume, 1);
            bool translate = options.Task == "translate";
            RunManifest.CheckUnchanged(recorded?.Corpus, "corpus");
            RunManifest.CheckUnchanged(recorded?.Data, "prepared data's manifest");
            PreparedData? prepared = translate ? PreparedData.Open(options.Data ?? PreparedData.DefaultDirectory) : null;
            IReadOnlyList<VersePair> trainPairs = prepared?.ReadPairs(CorpusSplit.Train) ?? [];
            TextCorpus? corpus = translate ? null : options.Corpus is null ? EmbeddedCorpus.Load() : TextCorpus.FromFile(options.Corpus);
            recorded ??= new RunManifest(options, options.Corpus is null || translate ? null : FileIdentity.Of(options.Corpus),
                prepared is null ? null : FileIdentity.Of(Path.Combine(prepared.Directory, PreparedData.ManifestFile)), options.Tokenizer, null);
            if (resume is null && _run.IsLead) recorded.Write(_run.Path);
            cancel.ThrowIfCancellationRequested();

            DataParallel.BeforeTokenizer(_communicator);                      // ranks other than 0 wait for rank 0's tokenizer
            (Tokenizer, _tokenizerIdentity) = resume is null
                ? TokenizerSetup.Prepare(options.Tokenizer, options.OutputDirectory,
                    () => corpus?.Train ?? string.Join("\n", trainPairs.Select(p => p.Source + "\n" + p.Target)), huggingFace?.Path)
                : TokenizerSetup.ForCheckpoint(options, options.OutputDirectory);
            DataParallel.AfterTokenizer(_communicator);
            recorded.CheckTokenizer(_run.Path, _tokenizerIdentity);
            if (resume is not null && resume.TokenizerHash != _tokenizerIdentity)
                throw new InvalidDataException($"{resume.Directory}: the checkpoint was trained with tokenizer {resume.TokenizerHash[..Math.Min(12, resume.TokenizerHash.Length)]}, but this run's is {_tokenizerIdentity[..Math.Min(12, _tokenizerIdentity.Length)]}");
            if (recorded.TokenizerHash is null && _run.IsLead) (recorded with { TokenizerHash = _tokenizerIdentity }).Write(_run.Path);
            cancel.ThrowIfCancellationRequested();

            var adapters = new List<LoraLinear>();
            var adapt = RunLayout.LoraAdapter(options, adapters);
            // A Hugging Face model's sizes are its config.json's: the source directory's, or the checkpoint's on resume.
            HfModelConfig? hfConfig = options.Model != HuggingFaceModel ? null
                : huggingFace?.Config ?? HfModelConfig.Read(Path.Combine(resume!.Directory, TrainingCheckpoint.ConfigFile));
            int vocabulary = hfConfig is null ? options.ModelVocabulary(Tokenizer.VocabularySize) : HuggingFaceVocabulary(hfConfig, options, Tokenizer.VocabularySize);
            // Weight matrices in fp32 or bf16 ("auto" resolved here and recorded, so that checkpoints say what they hold).
            var weights = options.WeightType(hfConfig?.ParameterCount ?? ModelFactory.ParameterCount(options.Model, vocabulary));
            _options = options = options with { Weights = weights == DType.BFloat16 ? "bf16" : "fp32" };
            using (WeightStorage.Use(weights))
                _model = hfConfig is null
                    ? ModelFactory.Create(options.Model, _backend, vocabulary, options.Seed, options.Dropout, adapt, options.SequenceLength)
                    : huggingFace?.CreateModel(_backend, options.Seed, adapt, options.Dropout)                          // weights loaded
                      ?? hfConfig.CreateModel(_backend, options.Seed, adapt, options.Dropout);
            if (hfConfig is not null && !translate && options.SequenceLength > _model.MaxSequenceLength)
                throw new ArgumentException($"--seq-len {options.SequenceLength} is longer than the model's {_model.MaxSequenceLength} positions");
            if (_model.IsEncoderDecoder && !translate) throw new ArgumentException($"{options.Model} is an encoder-decoder: language modelling needs a decoder-only model (gpt-*, llama-*); t5-* models train with --task translate");
            if (options.LoraRank > 0) SelectLoraTrainable(_model.Parameters().ToArray(), options.LoraMode);
            if (options.InitFrom is string init && resume is null && huggingFace is null)
            {
                var source = TrainingCheckpoint.ReadInfo(TrainingCheckpoint.Resolve(init));
                if (source.TokenizerHash != _tokenizerIdentity)
                    throw new InvalidDataException($"{source.Directory}: the checkpoint was trained with another tokenizer than this run's ({options.Tokenizer}); pass its tokenizer directory");
                TrainingCheckpoint.InitialiseFrom(source.Directory, _model, _notices);
            }
            if (options.ActivationCheckpointing) _model.EnableCheckpointing(options.CheckpointBlocks);
            var trainable = _model.Parameters().Where(p => p.RequiresGrad).ToArray();
            _optimizer = options.Optimizer.Create(_backend, trainable);
            _optimizer.RoundingSeed = Seeds.Derive(options.Seed, 13);                  // bf16 weights: stochastic rounding streams
            _optimizer.Rounding = options.WeightRounding;
            _pipeline = options.Pipeline.Build(_backend, trainable, _optimizer);
            _pipeline.CheckFinite = options.CheckFinite;
            _layout = new RunLayout(options, trainable, _pipeline, adapters, _notices);
            cancel.ThrowIfCancellationRequested();
            _task = task ?? (prepared is not null
                ? new TranslationTask(_backend, TranslationTemplateOf(options, Tokenizer, _model), trainPairs.Select(p => (p.Source, p.Target)).ToArray(),
                    prepared.ReadPairs(CorpusSplit.Validation).Select(p => (p.Source, p.Target)).ToArray(), options.BatchSize, Seeds.Derive(options.Seed, 3),
                    $"{prepared.Directory} ({PreparedData.Name})")
                : new LanguageModelingTask(_backend, corpus!, Tokenizer, options.BatchSize, options.SequenceLength, Seeds.Derive(options.Seed, 3),
                    _tokenizerIdentity, TokenStore.DefaultCacheDirectory));
            if (resume is not null)
            {
                TrainingCheckpoint.Load(resume.Directory, _model, _optimizer, _pipeline, _notices);
                _task.Position = resume.Position;
                _startStep = resume.Step;
            }
            if (_communicator is not null) _reducer = DataParallel.Join(_communicator, options, _tokenizerIdentity, _backend, _model, _pipeline, _task);
        }
        catch
        {
            Dispose();
            if (resumeFrom is null) _run?.Abandon();                          // a new run that never started leaves nothing behind
            throw;
        }
    }

    /// <summary>
    /// The run's options as the trainer resolved them: the checkpoint's on resume, with the model ("hf" for a Hugging
    /// Face directory), the weight type and the world size filled in.
    /// </summary>
    public TrainOptions Options => _options;

    /// <summary>The <see cref="TrainOptions.Model"/> of a run whose model is a Hugging Face directory's (its config.json, in every checkpoint).</summary>
    public const string HuggingFaceModel = "hf";

    /// <summary>A Hugging Face model's vocabulary (config.json's), which must hold the tokenizer's tokens and agree with --vocabulary.</summary>
    private static int HuggingFaceVocabulary(HfModelConfig config, TrainOptions options, int tokenizerSize)
    {
        int vocabulary = config.Gpt2?.Vocabulary ?? config.Llama!.Vocabulary;
        if (tokenizerSize > vocabulary)
            throw new ArgumentException($"the tokenizer has {tokenizerSize} tokens but the model only {vocabulary}: pass the model's own tokenizer");
        if (options.Vocabulary != 0 && options.Vocabulary != vocabulary)
            throw new ArgumentException($"--vocabulary {options.Vocabulary}: the model's vocabulary is {vocabulary}, as its config.json says");
        return vocabulary;
    }

    /// <summary>
    /// One-line notices of the set-up for the user: a run moved aside, a stale lock taken over, an unverified
    /// (older) checkpoint, a LoRA rank capped, a run restarted.
    /// </summary>
    public IReadOnlyList<string> Notices => _notices;

    /// <summary>How many matrices FLORA compresses and where LoRA sits; empty when the run uses neither.</summary>
    public string Layout => _layout.ToString();

    /// <summary>
    /// Which parameters of a LoRA-wrapped model train: the adapters always; the wrapped matrices (each "NAME.weight"
    /// with a "NAME.lora_A" beside it) never; everything else (embeddings, biases, norms, unwrapped matrices) only in
    /// <see cref="LoraMode.Paper"/>.
    /// </summary>
    public static void SelectLoraTrainable(IReadOnlyList<Parameter> parameters, LoraMode mode)
    {
        static string Owner(string name) => name.LastIndexOf('.') is int i and >= 0 ? name[..i] : "";
        var wrapped = parameters.Where(p => LoraLinear.IsAdapter(p.Name)).Select(p => Owner(p.Name) + ".weight").ToHashSet(StringComparer.Ordinal);
        foreach (var p in parameters)
            p.RequiresGrad = LoraLinear.IsAdapter(p.Name) || (mode == LoraMode.Paper && !wrapped.Contains(p.Name));
    }

    /// <summary>How a run's translation pairs become model input (the model decides the layout, its context the room).</summary>
    public static TranslationTemplate TranslationTemplateOf(TrainOptions options, ITokenizer tokenizer, LanguageModel model) =>
        new(tokenizer, new TranslationFormat(MaxSourceTokens: options.MaxSourceTokens, MaxTargetTokens: options.MaxTargetTokens),
            model.IsEncoderDecoder ? TranslationLayout.EncoderDecoder : TranslationLayout.DecoderOnly, model.MaxSequenceLength);

    /// <summary>The run directory a checkpoint directory (RUN/checkpoints/step-N or RUN/best) belongs to.</summary>
    /// <exception cref="FloraException">The checkpoint is not inside a run directory (a copy of its own).</exception>
    public static string RunDirectoryOf(string checkpointDirectory) => TrainingCheckpoint.RunDirectoryOf(checkpointDirectory)
        ?? throw new FloraException($"{checkpointDirectory} is a checkpoint outside a run directory (RUN/{TrainingCheckpoint.Directory}/step-N or RUN/{TrainingCheckpoint.Best}): " +
            "give the run directory, or copy the whole run");

    /// <summary>The run's tokenizer: trained, loaded, or the checkpoint's.</summary>
    public ITokenizer Tokenizer { get; }
    /// <summary>The model being trained, owned by the trainer.</summary>
    public LanguageModel Model => _model;
    /// <summary>The step the run continues after: 0 for a new run, the checkpoint's step on resume.</summary>
    public long StartStep => _startStep;
    /// <summary>One line: the model, the data, the optimizer and, in a data-parallel run, the ranks and the all-reduce.</summary>
    public string Describe() => $"{_model.Describe()}; {_task.Describe()}; {_options.Optimizer}" +
        (_communicator is null ? "" : $"; data parallel over {_communicator.WorldSize} ranks ({_communicator.Description}, all-reduce {_options.AllReduce.ToString().ToLowerInvariant()}), global batch {_communicator.WorldSize} x {_options.BatchSize}");

    /// <summary>This rank's communicator in a data-parallel run, else null.</summary>
    public ICommunicator? Communicator => _communicator;

    /// <summary>Whether this process writes logs, charts and checkpoints: a single process, or rank 0.</summary>
    public bool IsLead => _communicator is null || _communicator.Rank == 0;

    /// <summary>The highest loss a run may reach: ten times a uniform guess's, and never so high that its perplexity overflows.</summary>
    private double DivergenceLimit => Math.Min(10 * Math.Log(Tokenizer.VocabularySize), Math.Log(double.MaxValue));

    /// <summary>Trains from the start (or the resumed) step to <see cref="TrainOptions.Steps"/>.</summary>
    public TrainResult Run(IProgress<TrainProgress>? progress = null, CancellationToken cancel = default)
    {
        var o = _options;
        var schedule = new LearningRateSchedule(o.Schedule, o.WarmupSteps, o.Steps);
        using var log = IsLead ? new MetricsLog(o.OutputDirectory, _startStep) : null;   // data parallel: rank 0 writes
        var output = IsLead ? RunOutput.Create(o.OutputDirectory) : null;
        var clock = Stopwatch.StartNew();
        double elapsedBefore = log?.Rows.Count > 0 ? log.Rows[^1].ElapsedSeconds : 0;
        long tokens = 0;
        double dataSeconds = 0;
        string? checkpoint = null;
        long step = _startStep;
        double? lastValidation = null;
        // The best validation loss so far (also over the rows of a resumed run) and its checkpoint (KeepBest).
        var earlier = (log?.Rows ?? []).Where(r => r.ValidationLoss is double v && double.IsFinite(v)).OrderBy(r => r.ValidationLoss).FirstOrDefault();
        double? bestValidation = earlier?.ValidationLoss;
        long bestStep = earlier?.Step ?? 0;
        string? bestCheckpoint = o.KeepBest && Directory.Exists(Path.Combine(o.OutputDirectory, TrainingCheckpoint.Best)) ? Path.Combine(o.OutputDirectory, TrainingCheckpoint.Best) : null;
        var recent = new Queue<double>();
        bool stopAgreed = false;                                            // data parallel: every rank stops after the same step
        bool Stopping() => _communicator is null ? cancel.IsCancellationRequested : stopAgreed;
        int sinceBest = 0;
        bool stoppedEarly = false;                                          // data parallel: validation is all-reduced, so every rank agrees
        try
        {
            while (step < o.Steps && !Stopping() && !stoppedEarly)
            {
                step++;
                long stepStart = Stopwatch.GetTimestamp();
                _optimizer.LearningRateScale = schedule.Factor(step);
                _pipeline.Step = step;
                if (_reducer is not null) _reducer.Step = step;
                var (loss, stepTokens, dataTicks) = TrainStep(step);
                if (_communicator is not null) (loss, stepTokens, stopAgreed) = DataParallel.StepTotals(_communicator, loss, stepTokens, cancel.IsCancellationRequested);
                tokens += stepTokens;
                dataSeconds += (double)dataTicks / Stopwatch.Frequency;
                double tokensPerSecond = stepTokens / Stopwatch.GetElapsedTime(stepStart).TotalSeconds;
                double? validation = null;
                if (step % o.EvalEvery == 0 || step == o.Steps) lastValidation = validation = Evaluate();
                if (validation is double v && double.IsFinite(v) && (bestValidation is null || v < bestValidation))
                {
                    (bestValidation, bestStep) = (v, step);
                    if (o.KeepBest && IsLead) bestCheckpoint = TrainingCheckpoint.SaveBest(o.OutputDirectory, step, _model, _optimizer, _pipeline, _task.Position, o, _tokenizerIdentity);
                    sinceBest = 0;
                }
                else if (validation is not null && o.EarlyStoppingPatience > 0 && ++sinceBest >= o.EarlyStoppingPatience) stoppedEarly = true;
                log?.Add(new TrainMetrics(step, loss, o.Optimizer.LearningRate * _optimizer.LearningRateScale, tokensPerSecond, validation,
                    elapsedBefore + clock.Elapsed.TotalSeconds));
                if (loss > DivergenceLimit || validation > DivergenceLimit)
                    throw new NonFiniteException(step, $"the run diverged: the {(loss > DivergenceLimit ? $"training loss is {loss:F1}" : $"validation loss is {validation:F1}")}, " +
                        $"above {DivergenceLimit:F1} (ten times a uniform guess's loss, or where perplexity overflows)");
                recent.Enqueue(loss);
                if (recent.Count > 20) recent.Dequeue();
                if (validation is not null && log is not null) output?.WriteChart("loss.svg", log.Chart($"{o.Model}, {o.Optimizer.Name}: loss"));
                if ((step % o.CheckpointEvery == 0 || step == o.Steps || stoppedEarly) && IsLead) checkpoint = SaveCheckpoint(step);
                progress?.Report(new TrainProgress(step, o.Steps, loss, tokensPerSecond, validation));
            }
            if (Stopping() && step > _startStep && step % o.CheckpointEvery != 0 && IsLead) checkpoint = SaveCheckpoint(step);
        }
        finally
        {
            if (log?.Rows.Count > 0) output!.WriteChart("loss.svg", log.Chart($"{o.Model}, {o.Optimizer.Name}: loss"));
        }
        double seconds = clock.Elapsed.TotalSeconds;
        return new TrainResult(_startStep + 1, step, recent.Count > 0 ? recent.Average() : double.NaN, lastValidation,
            tokens / Math.Max(seconds, 1e-9), tokens, seconds, _backend.Ledger.Snapshot(), _optimizer.StateBytes,
            _model.Describe(), _task.Describe(), o.Optimizer.ToString(), checkpoint, dataSeconds, bestValidation, bestStep, bestCheckpoint,
            _reducer is null ? null : DataParallel.Report(_reducer, o, step - _startStep),
            Resamplings, _model.Parameters().Where(p => p.RequiresGrad).Sum(p => (long)p.Value.Count));
    }

    /// <summary>
    /// One optimizer step: tau micro-batches through forward, loss and backward into the pipeline. Returns the
    /// mean loss, the tokens the model read (inputs, and sources of encoder-decoders) and the time spent
    /// getting the batches (data loading).
    /// </summary>
    private (double Loss, long Tokens, long DataTicks) TrainStep(long step)
    {
        _model.Context.Training = true;
        _model.Context.Step = step;
        double sum = 0;
        long tokens = 0, dataTicks = 0;
        for (int micro = 0; micro < _options.AccumulationSteps; micro++)
        {
            long before = Stopwatch.GetTimestamp();
            Batch batch = _task.Next();
            dataTicks += Stopwatch.GetTimestamp() - before;
            tokens += batch.Inputs.Count + (batch.Source?.Count ?? 0);
            if (batch.Source is Tensor source) _model.SetSource(source, batch.SourceLengths);
            double loss = _model.ForwardLoss(batch.Inputs, batch.Targets, _pipeline);     // the loss's gradients in the same pass
            if (!double.IsFinite(loss)) throw new NonFiniteException(step, $"the training loss is {loss}; {FirstNonFiniteParameter()}");
            _model.BackwardLoss(_pipeline);
            _pipeline.EndMicroBatch();
            sum += loss;
        }
        return (sum / _options.AccumulationSteps, tokens, dataTicks);
    }

    /// <summary>
    /// Times <paramref name="steps"/> training steps after <paramref name="warmup"/> untimed ones, split into
    /// forward (model and loss), backward (into the pipeline) and optimizer (the pipeline's end of cycle);
    /// the backend is synchronised at each boundary, so on a GPU the phases are device time. Then one more
    /// step runs with the op profiler attached (which waits for every op) for the share of each op.
    /// Writes no metrics and no checkpoints. Medians per step.
    /// </summary>
    public StepTimings MeasureSteps(int warmup, int steps)
    {
        if (steps <= 0 || warmup < 0) throw new ArgumentException($"steps ({steps}) must be positive and warm-up ({warmup}) non-negative");
        var forward = new List<double>(); var backward = new List<double>(); var optimizer = new List<double>(); var total = new List<double>();
        long step = _startStep;
        (double F, double B, double O, double All) OneStep()
        {
            _model.Context.Training = true;
            _model.Context.Step = ++step;
            double f = 0, b = 0, o = 0;
            _backend.Synchronize();
            long start = Stopwatch.GetTimestamp();
            for (int micro = 0; micro < _options.AccumulationSteps; micro++)
            {
                Batch batch = _task.Next();
                long t0 = Stopwatch.GetTimestamp();
                if (batch.Source is Tensor source) _model.SetSource(source, batch.SourceLengths);
                _model.ForwardLoss(batch.Inputs, batch.Targets, _pipeline);
                _backend.Synchronize();
                long t1 = Stopwatch.GetTimestamp();
                _model.BackwardLoss(_pipeline);
                _backend.Synchronize();
                long t2 = Stopwatch.GetTimestamp();
                _pipeline.EndMicroBatch();
                _backend.Synchronize();
                long t3 = Stopwatch.GetTimestamp();
                f += (t1 - t0) / (double)Stopwatch.Frequency;
                b += (t2 - t1) / (double)Stopwatch.Frequency;
                o += (t3 - t2) / (double)Stopwatch.Frequency;
            }
            return (f, b, o, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        for (int i = 0; i < warmup + steps; i++)
        {
            var (f, b, o, all) = OneStep();
            if (i < warmup) continue;
            forward.Add(f); backward.Add(b); optimizer.Add(o); total.Add(all);
        }
        var profiler = new Flora.Backends.OpProfiler();
        _backend.Profiler = profiler;
        double profiled = OneStep().All;
        _backend.Profiler = null;
        static double Median(List<double> v) { var s = v.Order().ToArray(); return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2; }
        long tokens = (long)_options.BatchSize * _options.SequenceLength * _options.AccumulationSteps;
        return new StepTimings(Median(total), Median(forward), Median(backward), Median(optimizer), profiler.Seconds("MatMul") / profiled, tokens / Median(total),
            profiler.Ops.OrderByDescending(kv => kv.Value.Ticks).Select(kv => (kv.Key, kv.Value.Seconds / profiled)).ToList(), profiler, profiled);
    }

    /// <summary>The backend this run trains on (benchmarks read its memory).</summary>
    public IBackend Backend => _backend;

    /// <summary>Bytes of optimizer state.</summary>
    public long OptimizerStateBytes => _optimizer.StateBytes;

    /// <summary>New random projections FLORA drew so far (compressed momentum's transfers, or compressed accumulation's cycles), per matrix.</summary>
    public long Resamplings => Math.Max(_optimizer.Resamplings,
        _pipeline.Sinks.OfType<CompressedAccumulateSink>().Select(s => s.Resamplings).DefaultIfEmpty(0).Max());

    /// <summary>Names the first parameter holding a NaN or an infinity, for the message of a diverged run.</summary>
    private string FirstNonFiniteParameter()
    {
        foreach (var p in _model.Parameters())
            if (!TrainingCheckpoint.IsFinite(_backend, p.Value)) return $"parameter '{p.Name}' holds NaN or infinite values";
        return "every parameter is finite: the overflow is in the activations";
    }

    /// <summary>Mean next-token loss over the validation batches (dropout off).</summary>
    public double Evaluate()
    {
        _model.Context.Training = false;
        double sum = 0;
        long count = 0;
        int index = 0;
        // Data parallel: EvalBatches global batches (ranks x per-rank batches), the ranks taking turns: the windows one process
        // with the global batch would evaluate, each rank evaluating as many batches as a single process would.
        int world = _communicator?.WorldSize ?? 1;
        foreach (var batch in _task.Validation(_options.EvalBatches * world))
        {
            if (world > 1 && index++ % world != _communicator!.Rank) continue;
            if (batch.Source is Tensor source) _model.SetSource(source, batch.SourceLengths);
            double loss = _model.ForwardLoss(batch.Inputs, batch.Targets);
            sum += loss * _model.CountedRows;
            count += _model.CountedRows;
        }
        _model.Context.Training = true;
        if (_communicator is not null) (sum, count) = DataParallel.Sum(_communicator, sum, count);
        return count == 0 ? double.NaN : sum / count;
    }

    private string SaveCheckpoint(long step) =>
        TrainingCheckpoint.Save(_options.OutputDirectory, step, _model, _optimizer, _pipeline, _task.Position, _options, _tokenizerIdentity, _options.KeepCheckpoints);

    /// <summary>
    /// Frees the task, the reducer, the pipeline, the optimizer, the model, the communicator and the backend, and
    /// unlocks the run directory.
    /// </summary>
    public void Dispose()
    {
        _task?.Dispose();
        _reducer?.Dispose();
        _pipeline?.Dispose();
        _optimizer?.Dispose();
        _model?.Dispose();
        _communicator?.Dispose();
        _backend?.Dispose();
        _run?.Dispose();
    }
}
