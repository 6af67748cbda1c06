using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn.Models;

/// <summary>
/// A model that maps token ids (B, T) to next-token logits (B*T, V). Encoder-decoder models take
/// their source through <see cref="SetSource"/> first. <see cref="Context"/> switches dropout and
/// sets the step that dropout seeds come from.
/// </summary>
public abstract class LanguageModel : Module
{
    /// <summary>
    /// A model on <paramref name="backend"/> whose dropout layers draw their masks under <paramref name="context"/>.
    /// </summary>
    protected LanguageModel(IBackend backend, string name, ModelContext context) : base(backend, name) => Context = context;

    /// <summary>
    /// The training flag, step and seed the dropout layers read: set <c>Training</c> to false to evaluate or generate.
    /// </summary>
    public ModelContext Context { get; }

    /// <summary>Token ids have no gradient: a language model's Backward returns null.</summary>
    public override bool ComputesInputGradient { get => false; set { } }

    /// <summary>The output projection from the last hidden states (B*T, C) to logits (B*T, V).</summary>
    protected abstract OutputHead Head { get; }

    /// <summary>ids (B, T) -&gt; the last hidden states (B*T, C), the output projection's input.</summary>
    protected abstract Tensor ForwardHidden(Tensor ids);

    /// <summary>Backward from dLoss/dHidden (B*T, C) through everything below the output projection.</summary>
    protected abstract void BackwardHidden(Tensor gradHidden, IGradientSink gradients);

    /// <summary>ids (B, T) -&gt; logits (B*T, V).</summary>
    public sealed override Tensor Forward(Tensor ids) => Head.Forward(ForwardHidden(ids));

    /// <summary>
    /// Backward from dLoss/dLogits (B*T, V) of the last <see cref="Forward"/>: every parameter gradient goes to
    /// <paramref name="gradients"/>. Returns null (token ids have no gradient).
    /// </summary>
    public sealed override Tensor? Backward(Tensor gradLogits, IGradientSink gradients)
    {
        BackwardHidden(Head.Backward(gradLogits, gradients)!, gradients);
        return null;
    }

    /// <summary>
    /// Mean next-token cross-entropy of ids (B, T) against targets (B, T) (negative targets ignored), with the
    /// output projection and the loss fused so that the (B*T, V) logits never exist whole. How training runs: given the
    /// sink the following <see cref="BackwardLoss"/> receives, the loss's gradients come from the same pass over the
    /// logits (<see cref="OutputHead.ForwardLoss"/>).
    /// </summary>
    public float ForwardLoss(Tensor ids, Tensor targets, IGradientSink? gradients = null) => Head.ForwardLoss(ForwardHidden(ids), targets, gradients);

    /// <summary>Rows that carried a loss in the last <see cref="ForwardLoss"/>.</summary>
    public int CountedRows => Head.CountedRows;

    /// <summary>Backward of the last <see cref="ForwardLoss"/>: every parameter gradient goes to the sink.</summary>
    public void BackwardLoss(IGradientSink gradients) => BackwardHidden(Head.BackwardLoss(gradients), gradients);

    /// <summary>Vocabulary size V (logit width).</summary>
    public abstract int Vocabulary { get; }

    /// <summary>Longest sequence the model accepts (its position table), or int.MaxValue.</summary>
    public abstract int MaxSequenceLength { get; }

    /// <summary>A one-line description for logs: architecture, sizes, parameter count.</summary>
    public abstract string Describe();

    /// <summary>
    /// For encoder-decoder models, the source ids (B, Ts) the next Forward attends to; <paramref name="lengths"/>,
    /// when the sources are right-padded, holds each one's real length (padding is masked).
    /// </summary>
    public virtual void SetSource(Tensor sourceIds, int[]? lengths = null) =>
        throw new InvalidOperationException($"{GetType().Name} is decoder-only: it takes no source");

    /// <summary>Whether the model also reads a source through <see cref="SetSource"/> (T5) besides the decoder's ids.</summary>
    public virtual bool IsEncoderDecoder => false;

    /// <summary>The transformer blocks activation checkpointing applies to, in the order forward runs them.</summary>
    protected abstract IReadOnlyList<TransformerBlock> CheckpointableBlocks { get; }

    /// <summary>How many blocks recompute their internals in backward (<see cref="EnableCheckpointing"/>); 0 = none.</summary>
    public int CheckpointedBlocks { get; private set; }

    /// <summary>Every block of the stack (<see cref="CheckpointedBlocks"/> can be at most this).</summary>
    public int BlockCount => CheckpointableBlocks.Count;

    private ActivationScope? _checkpointScope;

    /// <summary>
    /// Turns on activation checkpointing for the first <paramref name="blocks"/> blocks in forward order (null: every
    /// block). A checkpointed block keeps only its input and recomputes the rest in backward; the others keep their
    /// activations. Each block left out costs its activations (a few C per token more than its input) and saves one
    /// forward pass of it in backward: the knob between memory and speed. The checkpointed blocks share one scope for
    /// their internals, freed with the model.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="blocks"/> is negative or more than the model has.</exception>
    /// <exception cref="InvalidOperationException">Checkpointing is on already.</exception>
    public void EnableCheckpointing(int? blocks = null)
    {
        var all = CheckpointableBlocks;
        int count = blocks ?? all.Count;
        if (count < 0 || count > all.Count) throw new ArgumentException($"{Name}: cannot checkpoint {count} blocks of {all.Count}: choose 0 to {all.Count}");
        if (_checkpointScope is not null) throw new InvalidOperationException($"{Name}: activation checkpointing is on already ({CheckpointedBlocks} blocks)");
        if (count == 0) return;
        _checkpointScope = new ActivationScope(Backend);
        for (int i = 0; i < count; i++) all[i].EnableCheckpointing(_checkpointScope);
        CheckpointedBlocks = count;
    }

    /// <summary>Frees the parameters and buffers of every layer and the checkpointed blocks' shared internals.</summary>
    public override void Dispose()
    {
        base.Dispose();
        _checkpointScope?.Dispose();
    }

    /// <summary>N: the elements of every parameter, frozen ones and LoRA adapters included (a tied weight counts once).</summary>
    public long ParameterCount => Parameters().Sum(p => (long)p.Value.Count);

    /// <summary>
    /// Training floating-point operations per token at <paramref name="sequenceLength"/> (PaLM's count):
    /// 6 N for the weights (forward and backward) plus 12 L C T for the attention scores and values.
    /// </summary>
    public virtual double TrainingFlopsPerToken(int sequenceLength) => 6.0 * ParameterCount;

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> that names <paramref name="model"/> unless <paramref name="ids"/> is an
    /// Int32 (B, T) tensor with T at most <paramref name="maxLength"/>.
    /// </summary>
    protected static void CheckIds(Tensor ids, int maxLength, string model)
    {
        if (ids.DType != DType.Int32 || ids.Shape.Rank != 2)
            throw new ArgumentException($"{model}: token ids must be an Int32 (B, T) tensor, got {ids}");
        if (ids.Shape[1] > maxLength)
            throw new ArgumentException($"{model}: sequence length {ids.Shape[1]} exceeds the model's context of {maxLength}");
    }
}
