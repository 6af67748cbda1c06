namespace Flora.Tensors;

/// <summary>What an allocation is for; the <see cref="MemoryLedger"/> reports bytes per tag.</summary>
public enum MemoryTag
{
    /// <summary>Model weights.</summary>
    Parameters,
    /// <summary>Full-size gradient buffers that outlive a backward pass (plain accumulation).</summary>
    Gradients,
    /// <summary>Optimizer state: momentum, second moments, FLORA's compressed momentum.</summary>
    OptimizerState,
    /// <summary>Gradient accumulators across micro-batches (naive or FLORA-compressed).</summary>
    Accumulator,
    /// <summary>Inputs, outputs and saved-for-backward tensors of modules, and their gradients.</summary>
    Activations,
    /// <summary>Transient working buffers shared across parameters (one gradient at a time, projections).</summary>
    Scratch,
}
