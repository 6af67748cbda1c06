namespace Flora.Training;

/// <summary>
/// Which held-out items (validation or test pairs) an evaluation reads when it cannot read them all: a sample drawn
/// at random from the whole split with one fixed seed, so that every run and every arm of an experiment is scored on
/// the same items, spread over the whole split instead of its first books.
/// </summary>
internal static class HeldOut
{
    /// <summary>The seed of every sample (fixed: the sample depends only on the split's size and the number wanted).</summary>
    public const int SampleSeed = 20240721;

    /// <summary>
    /// The indices of <paramref name="wanted"/> of <paramref name="count"/> items, drawn without replacement with
    /// <see cref="SampleSeed"/> and returned in increasing order; all of them when <paramref name="wanted"/> is 0 or at
    /// least <paramref name="count"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A count is negative.</exception>
    public static int[] Sample(int count, int wanted)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(wanted);
        int[] all = Enumerable.Range(0, count).ToArray();
        if (wanted == 0 || wanted >= count) return all;
        new Random(SampleSeed).Shuffle(all);
        int[] chosen = all[..wanted];
        Array.Sort(chosen);
        return chosen;
    }

    /// <summary>The items of <see cref="Sample"/>, in the split's order.</summary>
    public static T[] Sample<T>(IReadOnlyList<T> items, int wanted) => Sample(items.Count, wanted).Select(i => items[i]).ToArray();
}
