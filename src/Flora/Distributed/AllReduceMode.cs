namespace Flora.Distributed;

/// <summary>What data-parallel ranks all-reduce (<c>--allreduce</c>).</summary>
public enum AllReduceMode
{
    /// <summary>The gradients as the sinks hold them: full gradients, or FLORA's compressed accumulators with <c>--accumulate compressed</c>.</summary>
    Plain,
    /// <summary>Full gradients of FLORA-eligible matrices are compressed with the shared seed's projection for the all-reduce, then decompressed.</summary>
    Compressed,
}
