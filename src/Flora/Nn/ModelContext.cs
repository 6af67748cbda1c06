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
    /// <summary>Whether the model is training: dropout is applied only then. Evaluation and generation set it to false.</summary>
    public bool Training { get; set; } = true;
    /// <summary>The training step the dropout masks are drawn for; the trainer sets it before each step.</summary>
    public long Step { get; set; }
    /// <summary>The model's seed (the one its weights were drawn from): the root of every dropout seed.</summary>
    public ulong Seed { get; init; }

    /// <summary>Data parallel: the rank, so that ranks draw different dropout masks (rank 0 draws a single process's).</summary>
    public int Shard { get; set; }

    /// <summary>
    /// The dropout seed of the layer named <paramref name="layer"/> at <see cref="Step"/>: Derive(ForName(Seed, layer), Step),
    /// derived once more with <see cref="Shard"/> on data-parallel ranks other than 0.
    /// </summary>
    public ulong SeedFor(string layer)
    {
        ulong seed = Seeds.Derive(Seeds.ForName(Seed, layer), (ulong)Step);
        return Shard == 0 ? seed : Seeds.Derive(seed, (ulong)Shard);
    }
}
