using System.Text;

namespace Flora.Backends;

/// <summary>
/// How Flora derives every random seed, so that projections can be regenerated instead of stored:
/// <code>
/// Mix(x)                = SplitMix64 finaliser of x + 0x9E3779B97F4A7C15
/// Derive(parent, index) = Mix(parent XOR Mix(index))
/// ForName(root, name)   = Derive(root, FNV-1a-64(UTF-8 bytes of name))
/// projection seed of parameter p in resampling period k = Derive(ForName(root, p.Name), k)
/// stochastic-rounding seed of a bf16 weight p at its update t = Derive(ForName(rounding root, p.Name), t)
/// </code>
/// The result depends only on the run's root seed, the parameter's name and the period number,
/// never on the order parameters are visited in or on the device.
/// </summary>
public static class Seeds
{
    /// <summary>SplitMix64's finaliser of x + 0x9E3779B97F4A7C15: a bijection of 64-bit values that scrambles every bit.</summary>
    public static ulong Mix(ulong x)
    {
        ulong z = x + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>The seed of child <paramref name="index"/> of <paramref name="parent"/>: Mix(parent XOR Mix(index)).</summary>
    public static ulong Derive(ulong parent, ulong index) => Mix(parent ^ Mix(index));

    /// <summary>The seed of the parameter (or stream) called <paramref name="name"/> under <paramref name="root"/>: Derive(root, FNV-1a-64(name)).</summary>
    public static ulong ForName(ulong root, string name) => Derive(root, Fnv1a64(name));

    /// <summary>The 64-bit FNV-1a hash of the UTF-8 bytes of <paramref name="text"/> (offset basis 0xCBF29CE484222325, prime 0x100000001B3).</summary>
    public static ulong Fnv1a64(string text)
    {
        ulong hash = 0xCBF29CE484222325UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 0x100000001B3UL;
        }
        return hash;
    }
}
