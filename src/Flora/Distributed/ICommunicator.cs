using Flora.Tensors;

namespace Flora.Distributed;

/// <summary>How an all-reduce combines the ranks' values.</summary>
public enum ReduceOp
{
    /// <summary>The sum over ranks.</summary>
    Sum,
    /// <summary>The mean over ranks (the sum divided by the world size).</summary>
    Average,
}

/// <summary>
/// The collectives data-parallel training needs, among <see cref="WorldSize"/> ranks that each hold a replica of
/// the model. Every rank must issue the same collectives, with tensors of the same sizes, in the same order.
/// Tensor collectives are in place and ordered with the backend's work: a reduction started with
/// <see cref="StartAllReduce"/> reads its tensors after the work issued before it and may still be running
/// (on a GPU, on a stream of its own, overlapping the backward pass) until <see cref="Wait"/>, after which work
/// issued to the backend sees the result. Host collectives block until every rank has contributed.
/// Implementations: <see cref="NcclCommunicator"/> (one process per GPU) and <see cref="InProcessGroup"/>
/// (several ranks as threads of one process, on the CPU: the tests' way to check the math).
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's (or thread's) rank, 0 to <see cref="WorldSize"/> - 1; rank 0 writes logs and checkpoints.</summary>
    int Rank { get; }

    /// <summary>The number of ranks.</summary>
    int WorldSize { get; }

    /// <summary>What carries the collectives (e.g. "NCCL 2.28.3, rank 1 of 8"), for logs.</summary>
    string Description { get; }

    /// <summary>
    /// Starts reducing every tensor of <paramref name="tensors"/> in place across ranks (one grouped launch). The
    /// tensors must not be written, and their result not read, before <see cref="Wait"/>.
    /// </summary>
    void StartAllReduce(IReadOnlyList<Tensor> tensors, ReduceOp op);

    /// <summary>Work issued to the backend from now on sees the results of every reduction started so far.</summary>
    void Wait();

    /// <summary>Copies rank <paramref name="root"/>'s tensors to every rank (in place; complete for later work, like a started reduction after <see cref="Wait"/>).</summary>
    void Broadcast(IReadOnlyList<Tensor> tensors, int root);

    /// <summary>Reduces host values across ranks in place (in double precision); blocks until done.</summary>
    void AllReduce(Span<double> values, ReduceOp op);

    /// <summary>Copies rank <paramref name="root"/>'s host values to every rank (bit for bit); blocks until done.</summary>
    void Broadcast(Span<double> values, int root);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();
}

/// <summary>A rank's settings disagree with rank 0's, or the ranks issued different collectives.</summary>
public sealed class RankMismatchException : FloraException
{
    /// <summary>A disagreement between ranks, described by <paramref name="message"/>.</summary>
    public RankMismatchException(string message) : base(message) { }
}
