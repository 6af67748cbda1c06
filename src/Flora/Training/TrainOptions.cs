using Flora.Backends;
using Flora.Devices;
using Flora.Distributed;
using Flora.Optim;

namespace Flora.Training;

/// <summary>Which parameters train when LoRA adapters wrap the attention and feed-forward matrices.</summary>
public enum LoraMode
{
    /// <summary>
    /// The FLORA paper's LoRA baseline (Section 3.1): the wrapped matrices are frozen and their adapters train, while
    /// token embeddings and vector weights (biases, norms) train as usual, with their own optimizer state.
    /// </summary>
    Paper,
    /// <summary>Only the adapters train; everything else is frozen (the common fine-tuning practice).</summary>
    AdaptersOnly,
}

/// <summary>
/// Everything that defines a training run. A checkpoint stores it, and a resumed run takes it from the
/// checkpoint, so that the continued run is the same run.
/// </summary>
public sealed record TrainOptions
{
    /// <summary>A preset of <see cref="Nn.Models.ModelFactory"/>, or "hf" for the model of the Hugging Face directory <see cref="InitFrom"/> (set by the trainer).</summary>
    public string Model { get; init; } = "gpt-small";
    /// <summary>
    /// "bpe:N" (train a byte-level BPE of N tokens on the training text), "gpt2", "hf" (the tokenizer of the Hugging Face
    /// directory <see cref="InitFrom"/>: tokenizer.json, or vocab.json and merges.txt), or a directory with encoder.json and vocab.bpe.
    /// </summary>
    public string Tokenizer { get; init; } = "bpe:4096";
    /// <summary>
    /// The model's vocabulary when it should be larger than the tokenizer's (0: the tokenizer's): a published model's
    /// shape for a benchmark (Llama 2's 32,000 rows) whatever tokenizer feeds it; ids beyond the tokenizer's never occur.
    /// </summary>
    public int Vocabulary { get; init; }
    /// <summary>A UTF-8 text file to train on; null for the embedded English corpus.</summary>
    public string? Corpus { get; init; }
    /// <summary>"lm" (next-token prediction on a corpus) or "translate" (Spanish to English pairs of <see cref="Data"/>).</summary>
    public string Task { get; init; } = "lm";
    /// <summary>A directory made by <c>flora data prepare</c>; null for <see cref="Flora.Data.Corpora.PreparedData.DefaultDirectory"/>.</summary>
    public string? Data { get; init; }
    /// <summary>Translation: source tokens kept (the paper's 512).</summary>
    public int MaxSourceTokens { get; init; } = 512;
    /// <summary>Translation: target tokens kept (the paper's 128).</summary>
    public int MaxTargetTokens { get; init; } = 128;
    public int SequenceLength { get; init; } = 128;
    public int BatchSize { get; init; } = 8;
    public int Steps { get; init; } = 600;
    public OptimizerSpec Optimizer { get; init; } = new() { Name = "flora", LearningRate = 3e-2f, Rank = 32 };
    public AccumulationMode Accumulation { get; init; } = AccumulationMode.None;
    public int AccumulationSteps { get; init; } = 1;
    /// <summary>Rank of compressed accumulation; 0 uses the optimizer's rank.</summary>
    public int AccumulationRank { get; init; }
    public bool Lomo { get; init; }
    public bool ActivationCheckpointing { get; init; }
    /// <summary>LoRA rank: wrap every attention and MLP projection with adapters of this rank (which other parameters train: <see cref="LoraMode"/>); 0 = off.</summary>
    public int LoraRank { get; init; }
    /// <summary>With LoRA: also train embeddings and vector weights (the paper's baseline, default) or only the adapters.</summary>
    public LoraMode LoraMode { get; init; } = LoraMode.Paper;
    /// <summary>Stop after this many evaluations in a row without a new best validation loss (0 = run every step).</summary>
    public int EarlyStoppingPatience { get; init; }
    public float LoraAlpha { get; init; } = 16f;
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Cosine;
    public int WarmupSteps { get; init; } = 50;
    public float? ClipNorm { get; init; }
    public float Dropout { get; init; }
    public int EvalEvery { get; init; } = 100;
    public int EvalBatches { get; init; } = 20;
    public int CheckpointEvery { get; init; } = 100;
    public int KeepCheckpoints { get; init; } = 2;
    public ulong Seed { get; init; }
    public string Device { get; init; } = "cpu";
    /// <summary>Matrix-product precision on the GPU: fp32, tf32 or bf16 (storage and optimizer state stay fp32).</summary>
    public string Precision { get; init; } = "bf16";
    /// <summary>
    /// How weight matrices are stored (<see cref="Nn.WeightStorage"/>): "fp32"; "bf16" (half the memory: the optimizer
    /// computes in fp32 and writes each new weight back with stochastic rounding); or "auto", bf16 on CUDA for models of
    /// more than <see cref="AutoBf16Parameters"/> parameters and fp32 otherwise. The trainer replaces "auto" by what it
    /// chose, so a checkpoint records the type its weights have.
    /// </summary>
    public string Weights { get; init; } = "auto";

    /// <summary>How bf16 weights take their new fp32 values: stochastically (the default) or to nearest (for comparisons).</summary>
    public WeightRounding WeightRounding { get; init; } = WeightRounding.Stochastic;

    /// <summary>Above this many parameters "auto" weights are bf16 on CUDA: from there the weights are most of a FLORA or LOMO run's memory.</summary>
    public const long AutoBf16Parameters = 1_000_000_000;
    public string OutputDirectory { get; init; } = "runs/train";
    public bool CheckFinite { get; init; } = true;
    /// <summary>
    /// Fine-tuning: a checkpoint (or run directory) whose model weights initialise this run, or a Hugging Face model
    /// directory, whose config.json then defines the model (LoRA adapters keep their own initialisation).
    /// </summary>
    public string? InitFrom { get; init; }
    /// <summary>Also keep the checkpoint of the lowest validation loss in RUN/best (the paper's model selection).</summary>
    public bool KeepBest { get; init; }
    /// <summary>Data parallel: plain all-reduce of the gradients, or FLORA-compressed (docs/distributed.md).</summary>
    public AllReduceMode AllReduce { get; init; } = AllReduceMode.Plain;
    /// <summary>Rank of the compressed all-reduce's projection; 0 uses the optimizer's rank.</summary>
    public int AllReduceRank { get; init; }
    /// <summary>Data-parallel ranks the run trains on (set by the trainer from its communicator; 1 in a single process). <see cref="BatchSize"/> is per rank.</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (SequenceLength <= 0) throw new ArgumentException($"sequence length must be positive, got {SequenceLength}");
        if (BatchSize <= 0) throw new ArgumentException($"batch size must be positive, got {BatchSize}");
        if (Steps <= 0) throw new ArgumentException($"steps must be positive, got {Steps}");
        if (!(Optimizer.LearningRate > 0) || !float.IsFinite(Optimizer.LearningRate)) throw new ArgumentException($"learning rate must be positive, got {Optimizer.LearningRate}");
        if (EvalEvery <= 0 || EvalBatches <= 0) throw new ArgumentException($"evaluation interval ({EvalEvery}) and batches ({EvalBatches}) must be positive");
        if (CheckpointEvery <= 0) throw new ArgumentException($"checkpoint interval must be positive, got {CheckpointEvery}");
        if (KeepCheckpoints <= 0) throw new ArgumentException($"checkpoints to keep must be positive, got {KeepCheckpoints}");
        if (Vocabulary < 0) throw new ArgumentException($"vocabulary must be non-negative (0: the tokenizer's), got {Vocabulary}");
        if (LoraRank < 0) throw new ArgumentException($"LoRA rank must be non-negative, got {LoraRank}");
        if (EarlyStoppingPatience < 0) throw new ArgumentException($"early-stopping patience must be non-negative, got {EarlyStoppingPatience}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentException($"dropout must be in [0, 1), got {Dropout}");
        if (Device != "cpu" && Device != "cuda") throw new ArgumentException($"device must be cpu or cuda, got '{Device}'");
        if (Task != "lm" && Task != "translate") throw new ArgumentException($"task must be lm or translate, got '{Task}'");
        if (Task == "translate" && Corpus is not null) throw new ArgumentException("--corpus is a language-modelling text: translation reads the pairs of --data");
        new TranslationFormat(MaxSourceTokens: MaxSourceTokens, MaxTargetTokens: MaxTargetTokens).Validate();
        Devices.BackendFactory.ParsePrecision(Precision);
        if (Weights != "auto") Nn.WeightStorage.Parse(Weights);
        Pipeline.Validate();
        if (WorldSize <= 0) throw new ArgumentException($"world size must be positive, got {WorldSize}");
        if (AllReduceRank < 0) throw new ArgumentException($"the all-reduce rank must be non-negative, got {AllReduceRank}");
        if (AllReduce == AllReduceMode.Compressed && WireRank <= 0)
            throw new ArgumentException("the compressed all-reduce needs a projection rank: pass --allreduce-rank");
        new LearningRateSchedule(Schedule, WarmupSteps, Steps).Validate();
    }

    /// <summary>The rank r of the compressed all-reduce: <see cref="AllReduceRank"/>, else the optimizer's.</summary>
    public int WireRank => AllReduceRank > 0 ? AllReduceRank : Optimizer.Rank;

    /// <summary>The gradient path these options ask for.</summary>
    public PipelineOptions Pipeline => new()
    {
        Mode = Accumulation,
        AccumulationSteps = AccumulationSteps,
        Rank = AccumulationRank > 0 ? AccumulationRank : Optimizer.Rank,
        Lomo = Lomo,
        Seed = Seeds.Derive(Seed, 7),
        ClipNorm = ClipNorm,
    };

    /// <summary>
    /// The type weight matrices are stored in for a model of <paramref name="parameters"/> parameters (null when not
    /// known before the model is built: then "auto" means fp32).
    /// </summary>
    public Tensors.DType WeightType(long? parameters) => Weights switch
    {
        "auto" => Device == "cuda" && parameters > AutoBf16Parameters ? Tensors.DType.BFloat16 : Tensors.DType.Float32,
        var w => Nn.WeightStorage.Parse(w),
    };

    /// <summary>The model's vocabulary for a tokenizer of <paramref name="tokenizerSize"/> tokens (<see cref="Vocabulary"/>).</summary>
    /// <exception cref="ArgumentException"><see cref="Vocabulary"/> is set and smaller than the tokenizer's.</exception>
    public int ModelVocabulary(int tokenizerSize) =>
        Vocabulary == 0 ? tokenizerSize
        : Vocabulary >= tokenizerSize ? Vocabulary
        : throw new ArgumentException($"--vocabulary {Vocabulary} is smaller than the tokenizer's {tokenizerSize} tokens");
}
