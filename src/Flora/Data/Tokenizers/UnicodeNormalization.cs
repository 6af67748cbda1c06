using System.Globalization;
using System.Reflection;
using System.Text;

namespace Flora.Data.Tokenizers;

/// <summary>
/// Unicode normalization forms NFC, NFD, NFKC and NFKD (UAX #15), from tables embedded in the library.
/// </summary>
/// <remarks>
/// Flora runs with invariant globalization, where <see cref="string.Normalize(NormalizationForm)"/> leaves
/// text unchanged, so a <c>tokenizer.json</c> with an <c>NFC</c> normalizer (Qwen2's) needs its own
/// implementation. The tables (<c>data/unicode/normalization.txt.gz</c>, made by
/// <c>scripts/make_unicode_normalization.py</c>) hold the canonical combining classes and the one-level
/// canonical and compatibility decompositions, with the primary composites marked; Hangul syllables follow
/// their algorithm. Decomposition is applied recursively, marks are put in canonical order (a stable sort
/// by combining class), and for NFC and NFKC each mark or starter is composed with the last starter when
/// nothing between blocks it. The input must hold no lone surrogates.
/// </remarks>
internal static class UnicodeNormalization
{
    private const string Resource = "unicode/normalization.txt.gz";
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Lazy<Tables> Data = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private sealed record Tables(
        Dictionary<int, byte> CombiningClass,
        Dictionary<int, int[]> Canonical,
        Dictionary<int, int[]> Compatibility,
        Dictionary<long, int> Composites);

    /// <summary>The text in the normalization form.</summary>
    public static string Normalize(string text, NormalizationForm form)
    {
        bool compatibility = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        bool compose = form is NormalizationForm.FormC or NormalizationForm.FormKC;
        // Below these, every character is its own normal form and composes with nothing before it.
        char stable = compose && !compatibility ? '\u0300' : compatibility ? '\u00A0' : '\u00C0';
        if (!text.AsSpan().ContainsAnyExceptInRange('\0', (char)(stable - 1)))
        {
            return text;
        }
        Tables tables = Data.Value;
        var points = new List<int>(text.Length + 8);
        foreach (Rune rune in text.EnumerateRunes())
        {
            Decompose(rune.Value, compatibility, tables, points);
        }
        Reorder(points, tables);
        if (compose)
        {
            Compose(points, tables);
        }
        var result = new StringBuilder(points.Count + 8);
        foreach (int point in points)
        {
            result.Append(new Rune(point).ToString());
        }
        return result.ToString();
    }

    private static void Decompose(int point, bool compatibility, Tables tables, List<int> output)
    {
        if (point is >= SBase and < SBase + SCount)
        {
            int s = point - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0)
            {
                output.Add(TBase + s % TCount);
            }
            return;
        }
        if (tables.Canonical.TryGetValue(point, out int[]? parts)
            || (compatibility && tables.Compatibility.TryGetValue(point, out parts)))
        {
            foreach (int part in parts)
            {
                Decompose(part, compatibility, tables, output);
            }
            return;
        }
        output.Add(point);
    }

    private static int Class(int point, Tables tables) => tables.CombiningClass.TryGetValue(point, out byte c) ? c : 0;

    /// <summary>Canonical ordering: a stable sort of each run of marks (class &gt; 0) by class.</summary>
    private static void Reorder(List<int> points, Tables tables)
    {
        for (int i = 1; i < points.Count; i++)
        {
            int c = Class(points[i], tables);
            if (c == 0)
            {
                continue;
            }
            for (int j = i; j > 0; j--)
            {
                int before = Class(points[j - 1], tables);
                if (before <= c)
                {
                    break;
                }
                (points[j - 1], points[j]) = (points[j], points[j - 1]);
            }
        }
    }

    private static void Compose(List<int> points, Tables tables)
    {
        var result = new List<int>(points.Count);
        int starter = -1;
        foreach (int point in points)
        {
            int c = Class(point, tables);
            if (starter >= 0)
            {
                bool adjacent = result.Count - 1 == starter;
                bool unblocked = adjacent || (c != 0 && Class(result[^1], tables) < c);
                if (unblocked && TryCompose(result[starter], point, tables, out int composite))
                {
                    result[starter] = composite;
                    continue;
                }
            }
            if (c == 0)
            {
                starter = result.Count;
            }
            result.Add(point);
        }
        points.Clear();
        points.AddRange(result);
    }

    private static bool TryCompose(int first, int second, Tables tables, out int composite)
    {
        if (first is >= LBase and < LBase + LCount && second is >= VBase and < VBase + VCount)
        {
            composite = SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
            return true;
        }
        if (first is >= SBase and < SBase + SCount && (first - SBase) % TCount == 0 && second is > TBase and < TBase + TCount)
        {
            composite = first + (second - TBase);
            return true;
        }
        return tables.Composites.TryGetValue(((long)first << 32) | (uint)second, out composite);
    }

    private static Tables Load()
    {
        Assembly assembly = typeof(UnicodeNormalization).Assembly;
        string name = $"{Resource} (embedded in {assembly.GetName().Name})";
        using Stream stream = assembly.GetManifestResourceStream(Resource)
            ?? throw new DataFormatException(name, "embedded resource not found: the library was built without data/unicode");
        string text = Encoding.UTF8.GetString(BpeFiles.ReadStream(stream, name, gzip: true));
        var classes = new Dictionary<int, byte>();
        var canonical = new Dictionary<int, int[]>();
        var compatibility = new Dictionary<int, int[]>();
        var composites = new Dictionary<long, int>();
        int lineNumber = 0;
        foreach (string line in text.Split('\n'))
        {
            lineNumber++;
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            string[] f = line.Split(' ');
            try
            {
                switch (f[0])
                {
                    case "c":
                        for (int p = Hex(f[1]); p <= Hex(f[2]); p++)
                        {
                            classes[p] = byte.Parse(f[3], CultureInfo.InvariantCulture);
                        }
                        break;
                    case "d" or "p":
                        int[] parts = f.Skip(2).Select(Hex).ToArray();
                        canonical[Hex(f[1])] = parts;
                        if (f[0] == "p")
                        {
                            composites[((long)parts[0] << 32) | (uint)parts[1]] = Hex(f[1]);
                        }
                        break;
                    case "k":
                        compatibility[Hex(f[1])] = f.Skip(2).Select(Hex).ToArray();
                        break;
                    default:
                        throw new FormatException($"unknown line kind '{f[0]}'");
                }
            }
            catch (Exception e) when (e is FormatException or IndexOutOfRangeException or OverflowException)
            {
                throw new DataFormatException(name, $"line {lineNumber}: {e.Message}");
            }
        }
        return new Tables(classes, canonical, compatibility, composites);
    }

    private static int Hex(string s) => int.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
}
