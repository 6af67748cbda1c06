namespace Flora.Nn;

/// <summary>
/// A module whose output is cheap to compute again (a norm, an activation function) and that can therefore keep it in
/// a buffer shared by the blocks of a stack instead of its own: the consumer saved a reference to that buffer, which the
/// next block's forward overwrites, so the owner of the stack calls <see cref="RecomputeOutput"/> right before the
/// consumer's backward reads it. The recomputation runs the same kernel on the same saved input, so it gives the same
/// bits, and the buffer costs one block's worth of memory instead of one per block.
/// </summary>
public interface IRecomputable
{
    /// <summary>Whether the output lives in the shared backward buffers (<see cref="Module.ShareGradients"/>) and must be recomputed.</summary>
    bool RecomputesOutput { get; set; }

    /// <summary>Writes the last forward's output again into the buffer it returned (nothing when <see cref="RecomputesOutput"/> is off).</summary>
    void RecomputeOutput();
}
