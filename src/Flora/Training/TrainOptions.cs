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
    /// <summary>
    /// <c>--model</c>: a preset of <see cref="Nn.Models.ModelFactory"/> ("gpt-small" by default), or "hf" for the model
    /// of the Hugging Face directory <see cref="InitFrom"/> (set by the trainer).
    /// </summary>
    public string Model { get; init; } = "gpt-small";
    /// <summary>
    /// <c>--tokenizer</c>: "bpe:N" (train a byte-level BPE of N tokens on the training text; "bpe:4096" by default),
    /// "gpt2", "hf" (the tokenizer of the Hugging Face directory <see cref="InitFrom"/>: tokenizer.json, or vocab.json
    /// and merges.txt), or a directory with encoder.json and vocab.bpe.
    /// </summary>
    public string Tokenizer { get; init; } = "bpe:4096";
    /// <summary>
    /// The model's vocabulary when it should be larger than the tokenizer's (0: the tokenizer's): a published model's
    /// shape for a benchmark (Llama 2's 32,000 rows) whatever tokenizer feeds it; ids beyond the tokenizer's never
    /// occur. Not a <c>flora train</c> option: <c>flora bench train --vocabulary</c> sets it.
    /// </summary>
    public int Vocabulary { get; init; }
    /// <summary><c>--corpus</c>: a UTF-8 text file to train on; null (the default) for the embedded English corpus.</summary>
    public string? Corpus { get; init; }
    /// <summary>
    /// <c>--task</c>: "lm" (next-token prediction on a corpus, the default) or "translate" (Spanish to English pairs of
    /// <see cref="Data"/>).
    /// </summary>
    public string Task { get; init; } = "lm";
    /// <summary>
    /// <c>--data</c>: a directory made by <c>flora data prepare</c>; null (the default) for
    /// <see cref="Flora.Data.Corpora.PreparedData.DefaultDirectory"/>.
    /// </summary>
    public string? Data { get; init; }
    /// <summary><c>--max-source</c>: translation source tokens kept (the paper's 512, the default).</summary>
    public int MaxSourceTokens { get; init; } = 512;
    /// <summary><c>--max-target</c>: translation target tokens kept (the paper's 128, the default).</summary>
    public int MaxTargetTokens { get; init; } = 128;
    /// <summary><c>--seq-len</c>: tokens per sequence T, and the context of a preset model; 128 by default.</summary>
    public int SequenceLength { get; init; } = 128;
    /// <summary><c>--batch</c>: sequences (or translation pairs) per micro-batch, per rank; 8 by default.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary><c>--steps</c>: the run's optimizer steps (updates); 600 by default.</summary>
    public int Steps { get; init; } = 600;
    /// <summary>
    /// The optimizer and its settings: <c>--optimizer</c>, <c>--lr</c>, <c>--rank</c>, <c>--kappa</c>, <c>--beta1</c>,
    /// <c>--weight-decay</c>, <c>--variant</c>, <c>--momentum-order</c>, <c>--unfactored</c> (and <c>--seed</c> for the
    /// projections); by default FLORA on Adafactor with r = 32 and learning rate 3e-2.
    /// </summary>
    public OptimizerSpec Optimizer { get; init; } = new() { Name = "flora", LearningRate = 3e-2f, Rank = 32 };
    /// <summary><c>--accumulate</c>: none (the default), naive, or compressed (FLORA's Algorithm 1).</summary>
    public AccumulationMode Accumulation { get; init; } = AccumulationMode.None;
    /// <summary><c>--tau</c>: micro-batches per update when accumulating; 1 by default.</summary>
    public int AccumulationSteps { get; init; } = 1;
    /// <summary>
    /// Rank of compressed accumulation; 0 (the default) uses the optimizer's rank. Not a <c>flora train</c> option.
    /// </summary>
    public int AccumulationRank { get; init; }
    /// <summary>
    /// <c>--lomo</c>: update each parameter inside backward, so no gradient buffer outlives its layer; off by default.
    /// </summary>
    public bool Lomo { get; init; }
    /// <summary>
    /// <c>--activation-checkpointing</c>: recompute each block in backward instead of keeping its activations; off by
    /// default.
    /// </summary>
    public bool ActivationCheckpointing { get; init; }
    /// <summary>
    /// <c>--checkpoint-blocks</c>: with activation checkpointing, only the first N blocks recompute in backward and the
    /// rest keep their activations (more memory, less time); null (the default) checkpoints every block.
    /// </summary>
    public int? CheckpointBlocks { get; init; }
    /// <summary>
    /// <c>--lora</c>: LoRA rank: wrap every attention and MLP projection with adapters of this rank (which other
    /// parameters train: <see cref="LoraMode"/>); 0 = off, the default.
    /// </summary>
    public int LoraRank { get; init; }
    /// <summary>
    /// With LoRA: also train embeddings and vector weights (the paper's baseline, default) or only the adapters
    /// (<c>--lora-adapters-only</c>).
    /// </summary>
    public LoraMode LoraMode { get; init; } = LoraMode.Paper;
    /// <summary>
    /// <c>--early-stop</c>: stop after this many evaluations in a row without a new best validation loss (0, the
    /// default: run every step).
    /// </summary>
    public int EarlyStoppingPatience { get; init; }
    /// <summary>LoRA's alpha: the adapters' path is scaled by alpha / r; 16 by default (no <c>flora train</c> option).</summary>
    public float LoraAlpha { get; init; } = 16f;
    /// <summary>
    /// <c>--schedule</c>: constant, or cosine (linear warm-up, then a cosine decay to 0.1 of the rate; the default).
    /// </summary>
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Cosine;
    /// <summary><c>--warmup</c>: warm-up steps of the cosine schedule; 50 by default.</summary>
    public int WarmupSteps { get; init; } = 50;
    /// <summary>
    /// <c>--clip</c>: the largest global gradient norm (not with LOMO or compressed accumulation); null, no clipping,
    /// by default.
    /// </summary>
    public float? ClipNorm { get; init; }
    /// <summary>
    /// <c>--dropout</c>: dropout probability on embeddings and residual branches (GPT-2, T5; Llama has none); 0 by
    /// default.
    /// </summary>
    public float Dropout { get; init; }
    /// <summary><c>--eval-every</c>: evaluate every N steps, and at the last step; 100 by default.</summary>
    public int EvalEvery { get; init; } = 100;
    /// <summary>
    /// <c>--eval-batches</c>: validation batches per evaluation (per rank's share, in global batches); 20 by default.
    /// </summary>
    public int EvalBatches { get; init; } = 20;
    /// <summary><c>--checkpoint-every</c>: write a checkpoint every N steps, and at the last step; 100 by default.</summary>
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>How many of the newest checkpoints RUN/checkpoints keeps; 2 by default (no <c>flora train</c> option).</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>
    /// <c>--seed</c>: the root of initialisation, data order, dropout, stochastic rounding and FLORA's projections;
    /// 0 by default.
    /// </summary>
    public ulong Seed { get; init; }
    /// <summary><c>--device</c>: "cpu" (the default) or "cuda".</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>
    /// <c>--precision</c>: matrix-product precision on the GPU: fp32, tf32 or bf16 (the default); storage and optimizer
    /// state stay fp32.
    /// </summary>
    public string Precision { get; init; } = "bf16";
    /// <summary>
    /// <c>--weights</c>: how weight matrices are stored (<see cref="Nn.WeightStorage"/>): "fp32"; "bf16" (half the
    /// memory: the optimizer computes in fp32 and writes each new weight back with stochastic rounding); or "auto",
    /// bf16 on CUDA for models of more than <see cref="AutoBf16Parameters"/> parameters and fp32 otherwise. The trainer
    /// replaces "auto" by what it chose, so a checkpoint records the type its weights have. "auto" by default.
    /// </summary>
    public string Weights { get; init; } = "auto";

    /// <summary>
    /// How bf16 weights take their new fp32 values: stochastically (the default) or to nearest (for comparisons). Not a
    /// <c>flora train</c> option.
    /// </summary>
    public WeightRounding WeightRounding { get; init; } = WeightRounding.Stochastic;

    /// <summary>Above this many parameters "auto" weights are bf16 on CUDA: from there the weights are most of a FLORA or LOMO run's memory.</summary>
    public const long AutoBf16Parameters = 1_000_000_000;
    /// <summary><c>--out</c>: the run directory (metrics, charts, checkpoints); "runs/train" by default.</summary>
    public string OutputDirectory { get; init; } = "runs/train";
    /// <summary>
    /// Check every gradient for NaN or infinity as it arrives (one reduction each), stopping with the parameter named; on
    /// by default (no <c>flora train</c> option; benchmarks turn it off).
    /// </summary>
    public bool CheckFinite { get; init; } = true;
    /// <summary>
    /// <c>--init-from</c>: for fine-tuning, a checkpoint (or run directory) whose model weights initialise this run, or
    /// a Hugging Face model directory, whose config.json then defines the model (LoRA adapters keep their own
    /// initialisation). Null by default.
    /// </summary>
    public string? InitFrom { get; init; }
    /// <summary>
    /// <c>--keep-best</c>: also keep the checkpoint of the lowest validation loss in RUN/best (the paper's model
    /// selection); off by default.
    /// </summary>
    public bool KeepBest { get; init; }
    /// <summary>
    /// <c>--allreduce</c>: in a data-parallel run, plain all-reduce of the gradients (the default), or FLORA-compressed
    /// (docs/distributed.md).
    /// </summary>
    public AllReduceMode AllReduce { get; init; } = AllReduceMode.Plain;
    /// <summary>
    /// <c>--allreduce-rank</c>: rank of the compressed all-reduce's projection; 0 (the default) uses the optimizer's
    /// rank.
    /// </summary>
    public int AllReduceRank { get; init; }
    /// <summary>
    /// Data-parallel ranks the run trains on (set by the trainer from its communicator; 1 in a single process).
    /// <see cref="BatchSize"/> is per rank. Not a <c>flora train</c> option: <c>flora launch -n</c> starts the ranks.
    /// </summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (SequenceLength <= 0) throw new ArgumentException($"sequence length must be positive, got {SequenceLength}");
        if (CheckpointBlocks is int blocks && (blocks < 0 || !ActivationCheckpointing))
            throw new ArgumentException(blocks < 0 ? $"--checkpoint-blocks must be 0 or more, got {blocks}" : "--checkpoint-blocks needs --activation-checkpointing");
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
