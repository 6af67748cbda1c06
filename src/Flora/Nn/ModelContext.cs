using Flora.Backends;
using Flora.Optim;

namespace Flora.Nn;

/// <summary>
/// State a whole model shares with its layers: whether it is training (dropout on) and the current
/// step, from which each dropout layer derives its seed: Derive(ForName(Seed, layer name), Step).
/// A recomputed forward (activation checkpointing) in the same step therefore draws the same masks.
/// </summary>
public sealed class ModelContext
{
    public bool Training { get; set; } = true;
    public long Step { get; set; }
    public ulong Seed { get; init; }

    /// <summary>Data parallel: the rank, so that ranks draw different dropout masks (rank 0 draws a single process's).</summary>
    public int Shard { get; set; }

    public ulong SeedFor(string layer)
    {
        ulong seed = Seeds.Derive(Seeds.ForName(Seed, layer), (ulong)Step);
        return Shard == 0 ? seed : Seeds.Derive(seed, (ulong)Shard);
    }
}
