using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Flora.Data.Tokenizers;

/// <summary>
/// GPT-2's pre-tokenisation: the text is cut into words by
/// <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>
/// before byte-pair merging, so no token ever spans two words.
/// </summary>
/// <remarks>
/// GPT-2 matches this pattern on code points, while .NET matches on UTF-16 code units, where
/// the two halves of a surrogate pair are neither letters nor digits. The .NET pattern therefore
/// spells out, as surrogate pairs, the letters and digits outside the Basic Multilingual Plane
/// (taken from <see cref="CharUnicodeInfo"/>), and keeps every other pair whole, so that a letter
/// such as U+20000 joins the word it stands in, exactly as in GPT-2. The pattern's alternatives
/// cover every character, so the matches tile the text: concatenated, they give it back.
/// <c>\s</c> is .NET's white space, the same set as in GPT-2's Python <c>regex</c> module: it includes
/// U+0085 and not U+FEFF. JavaScript ports such as the npm package gpt-3-encoder differ on exactly
/// those two characters.
/// </remarks>
internal static class Gpt2PreTokenizer
{
    /// <summary>The compiled pattern; thread-safe.</summary>
    public static readonly Regex Pattern = new(BuildPattern(), RegexOptions.Compiled | RegexOptions.CultureInvariant);

    /// <summary>The pattern as GPT-2 writes it, for documentation and messages.</summary>
    public const string Gpt2Source = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    internal static string BuildPattern()
    {
        // The category of every supplementary code point, looked up once: 0 other, 1 letter, 2 number.
        var kinds = new byte[0x110000 - 0x10000];
        for (int c = 0x10000; c < 0x110000; c++)
        {
            kinds[c - 0x10000] = IsLetter(c) ? (byte)1 : IsNumber(c) ? (byte)2 : (byte)0;
        }
        string astralLetter = AstralClass(kinds, 1);
        string astralNumber = AstralClass(kinds, 2);
        string astralLetterOrNumber = AstralClass(kinds, 1 | 2);

        string letter = $@"(?:\p{{L}}|{astralLetter})";
        string number = $@"(?:\p{{N}}|{astralNumber})";
        // Any other code point but white space: a BMP character, a surrogate pair that is not a
        // letter or digit, or a lone surrogate (which UTF-8 encoding turns into U+FFFD).
        string other = @"(?:[^\s\p{L}\p{N}\uD800-\uDFFF]"
            + $@"|(?!{astralLetterOrNumber})[\uD800-\uDBFF][\uDC00-\uDFFF]"
            + @"|[\uD800-\uDBFF](?![\uDC00-\uDFFF])"
            + @"|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF])";

        // The letter, number and other loops end their alternative, so they never need to give
        // characters back: atomic groups say so and keep the matcher from trying.
        return @"'s|'t|'re|'ve|'m|'ll|'d"
            + $@"| ?(?>{letter}+)"
            + $@"| ?(?>{number}+)"
            + $@"| ?(?>{other}+)"
            + @"|\s+(?!\S)|\s+";
    }

    private static bool IsLetter(int codePoint) => CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => true,
        _ => false,
    };

    private static bool IsNumber(int codePoint) => CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
    {
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => true,
        _ => false,
    };

    /// <summary>
    /// An alternation of surrogate pairs matching exactly the supplementary code points whose kind
    /// has a bit of <paramref name="mask"/>. High surrogates with the same low surrogates share one branch.
    /// </summary>
    private static string AstralClass(byte[] kinds, int mask)
    {
        var branches = new List<(int HighFirst, int HighLast, string Lows)>();
        for (int high = 0xD800; high <= 0xDBFF; high++)
        {
            string lows = LowRanges(kinds, high, mask);
            if (lows.Length == 0)
            {
                continue;
            }
            if (branches.Count > 0 && branches[^1].HighLast == high - 1 && branches[^1].Lows == lows)
            {
                branches[^1] = (branches[^1].HighFirst, high, lows);
            }
            else
            {
                branches.Add((high, high, lows));
            }
        }
        if (branches.Count == 0)
        {
            return "(?!)";
        }
        var pattern = new StringBuilder("(?:");
        for (int i = 0; i < branches.Count; i++)
        {
            if (i > 0)
            {
                pattern.Append('|');
            }
            var (first, last, lows) = branches[i];
            pattern.Append('[').Append(Escape(first));
            if (last != first)
            {
                pattern.Append('-').Append(Escape(last));
            }
            pattern.Append("][").Append(lows).Append(']');
        }
        return pattern.Append(')').ToString();
    }

    /// <summary>The low surrogates completing <paramref name="high"/> to an included code point, as class ranges.</summary>
    private static string LowRanges(byte[] kinds, int high, int mask)
    {
        var ranges = new StringBuilder();
        int start = -1;
        for (int low = 0xDC00; low <= 0xE000; low++)
        {
            bool inside = low <= 0xDFFF && (kinds[((high - 0xD800) << 10) + (low - 0xDC00)] & mask) != 0;
            if (inside && start < 0)
            {
                start = low;
            }
            else if (!inside && start >= 0)
            {
                ranges.Append(Escape(start));
                if (low - 1 != start)
                {
                    ranges.Append('-').Append(Escape(low - 1));
                }
                start = -1;
            }
        }
        return ranges.ToString();
    }

    private static string Escape(int unit) => $@"\u{unit:X4}";
}
