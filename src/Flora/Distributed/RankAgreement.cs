using Flora.Backends;

namespace Flora.Distributed;

/// <summary>
/// Checks that every rank runs with the same settings before they train together: rank 0's fingerprint (a
/// 64-bit hash of a description of the settings) is broadcast, every rank compares it with its own, and the
/// number of ranks that differ is summed, so that all ranks fail together, with a message that says which.
/// Seeds (initialisation, data order, FLORA's projections) derive from the settings, so equal settings mean
/// equal seeds on every rank.
/// </summary>
internal static class RankAgreement
{
    /// <summary>Throws <see cref="RankMismatchException"/> on every rank when some rank's <paramref name="settings"/> differ from rank 0's.</summary>
    public static void Check(ICommunicator communicator, string settings, string what = "settings")
    {
        ulong mine = Seeds.Fnv1a64(settings);
        // Two exact 32-bit halves: doubles carry them bit for bit through any transport.
        Span<double> leader = [mine >> 32, mine & 0xFFFFFFFF];
        communicator.Broadcast(leader, root: 0);
        bool same = (ulong)leader[0] == mine >> 32 && (ulong)leader[1] == (mine & 0xFFFFFFFF);
        Span<double> differing = [same ? 0 : 1];
        communicator.AllReduce(differing, ReduceOp.Sum);
        if (differing[0] == 0) return;
        throw new RankMismatchException(same
            ? $"rank {communicator.Rank}: {differing[0]:F0} of {communicator.WorldSize} ranks run with other {what} than rank 0: start every rank with the same command line"
            : $"rank {communicator.Rank} runs with other {what} than rank 0 (fingerprint {mine:x16}, rank 0 has {(ulong)leader[0] << 32 | (ulong)leader[1]:x16}): start every rank with the same command line");
    }
}
