using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Flora.Data.Tokenizers;

/// <summary>
/// A pattern of a Hugging Face <c>tokenizer.json</c> (written for Oniguruma, which the Rust library
/// uses, and which matches on code points) run with .NET's <see cref="Regex"/> (which matches on UTF-16
/// code units), so that it finds the same matches.
/// </summary>
/// <remarks>
/// <para>The pattern is translated construct by construct, and anything whose meaning differs between
/// the two engines, or that .NET lacks, is refused: general categories (<c>\p{L}</c>, <c>\p{^N}</c>),
/// <c>\s</c> (the same white space in both), <c>\d</c>, control escapes, <c>\x{..}</c>, groups, look-around,
/// <c>(?i:...)</c>, classes without intersections or POSIX brackets, and possessive quantifiers (rewritten
/// as atomic groups). <c>^</c> and <c>$</c> are line anchors in Oniguruma's Ruby syntax, so the pattern runs
/// with <see cref="RegexOptions.Multiline"/>. <c>\w</c> and <c>\b</c> are refused: the engines disagree on
/// some marks and letter-numbers.</para>
/// <para>Outside the Basic Multilingual Plane a .NET pattern would see two surrogates, neither of them a
/// letter. A text holding surrogate pairs is therefore matched through a stand-in string with one
/// character per code point: each supplementary code point is replaced by a character of the Basic
/// Multilingual Plane with the same general category that the pattern does not name, and the matches
/// are mapped back. Lone surrogates must have been replaced (by U+FFFD) before.</para>
/// </remarks>
internal sealed class HfRegex
{
    private static readonly HashSet<string> Categories = new(StringComparer.Ordinal)
    {
        "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No",
        "P", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So",
        "Z", "Zs", "Zl", "Zp", "C", "Cc", "Cf", "Cs", "Co", "Cn",
    };

    private readonly Regex _regex;
    private readonly char[]? _standIns; // null: a literal, matched on the text itself

    private HfRegex(Regex regex, char[]? standIns)
    {
        _regex = regex;
        _standIns = standIns;
    }

    /// <summary>The .NET pattern the Oniguruma pattern was translated to.</summary>
    public string DotNetPattern => _regex.ToString();

    /// <summary>Translates and compiles a pattern; <paramref name="fail"/> makes the exception for a problem.</summary>
    public static HfRegex Create(string pattern, Func<string, Exception> fail)
    {
        string translated = Translate(pattern, fail);
        Regex regex;
        try
        {
            regex = new Regex(translated, RegexOptions.CultureInvariant | RegexOptions.Multiline | RegexOptions.Compiled);
        }
        catch (ArgumentException e)
        {
            throw fail($"regular expression {BpeFiles.Show(pattern)} is not supported: {e.Message}");
        }
        return new HfRegex(regex, StandIns(pattern));
    }

    /// <summary>A regex matching a literal string (on UTF-16 units, which finds the same matches in valid text).</summary>
    public static HfRegex Literal(string text) =>
        new(new Regex(Regex.Escape(text), RegexOptions.CultureInvariant), standIns: null);

    /// <summary>The matches in <paramref name="text"/>, left to right, as (start, length) in UTF-16 units of the text.</summary>
    public List<(int Start, int Length)> Matches(string text)
    {
        var result = new List<(int, int)>();
        if (_standIns is null || text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (ValueMatch m in _regex.EnumerateMatches(text))
            {
                result.Add((m.Index, m.Length));
            }
            return result;
        }
        var mapped = new StringBuilder(text.Length);
        var starts = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length; i++)
        {
            starts.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                int codePoint = char.ConvertToUtf32(text[i], text[i + 1]);
                mapped.Append(_standIns[(int)CharUnicodeInfo.GetUnicodeCategory(codePoint)]);
                i++;
            }
            else
            {
                mapped.Append(text[i]);
            }
        }
        starts.Add(text.Length);
        foreach (ValueMatch m in _regex.EnumerateMatches(mapped.ToString()))
        {
            int start = starts[m.Index];
            result.Add((start, starts[m.Index + m.Length] - start));
        }
        return result;
    }

    /// <summary>For each general category, a BMP character of it that the pattern does not contain in either case.</summary>
    private static char[] StandIns(string pattern)
    {
        var standIns = new char[32];
        var found = new bool[32];
        int left = 30; // every category but Cs (surrogates) and OtherNotAssigned is found quickly; see below
        for (int c = 0x100; c < 0xFFFE && left > 0; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF)
            {
                continue;
            }
            char ch = (char)c;
            int category = (int)CharUnicodeInfo.GetUnicodeCategory(ch);
            if (found[category] || pattern.Contains(ch) || pattern.Contains(char.ToUpperInvariant(ch))
                || pattern.Contains(char.ToLowerInvariant(ch)))
            {
                continue;
            }
            standIns[category] = ch;
            found[category] = true;
            left--;
        }
        for (int i = 0; i < standIns.Length; i++)
        {
            if (!found[i])
            {
                standIns[i] = '\uFFFD'; // no BMP character of the category (surrogates): unreachable for code points
            }
        }
        return standIns;
    }

    /// <summary>Translates an Oniguruma (Ruby syntax) pattern to .NET, refusing what would behave differently.</summary>
    internal static string Translate(string pattern, Func<string, Exception> fail)
    {
        var output = new StringBuilder(pattern.Length + 16);
        var groupStarts = new Stack<int>();
        int atomStart = -1;
        int i = 0;
        Exception Unsupported(string what) =>
            fail($"regular expression {BpeFiles.Show(pattern)}: {what} at position {i} is not supported");

        while (i < pattern.Length)
        {
            char c = pattern[i];
            switch (c)
            {
                case '\\':
                    atomStart = output.Length;
                    i = TranslateEscape(pattern, i, output, inClass: false, Unsupported);
                    break;
                case '[':
                    atomStart = output.Length;
                    i = TranslateClass(pattern, i, output, Unsupported);
                    break;
                case '(':
                    groupStarts.Push(output.Length);
                    atomStart = -1;
                    i = TranslateGroupOpening(pattern, i, output, Unsupported);
                    break;
                case ')':
                    if (groupStarts.Count == 0)
                    {
                        throw Unsupported("an unbalanced ')'");
                    }
                    atomStart = groupStarts.Pop();
                    output.Append(')');
                    i++;
                    break;
                case '*' or '+' or '?':
                    if (atomStart < 0)
                    {
                        throw Unsupported($"a quantifier '{c}' with nothing to repeat");
                    }
                    output.Append(c);
                    i++;
                    if (i < pattern.Length && pattern[i] == '+')
                    {
                        // Possessive: X*+ is the atomic group (?>X*).
                        output.Insert(atomStart, "(?>").Append(')');
                        i++;
                    }
                    else if (i < pattern.Length && pattern[i] == '?')
                    {
                        output.Append('?');
                        i++;
                    }
                    atomStart = -1;
                    break;
                case '{':
                    {
                        int close = pattern.IndexOf('}', i);
                        string body = close > i ? pattern[(i + 1)..close] : "";
                        if (close < 0 || body.Length == 0 || !body.All(ch => ch is >= '0' and <= '9' or ','))
                        {
                            throw Unsupported("a '{' that is not a repetition {n,m}");
                        }
                        if (atomStart < 0)
                        {
                            throw Unsupported("a repetition with nothing to repeat");
                        }
                        output.Append(pattern, i, close + 1 - i);
                        i = close + 1;
                        if (i < pattern.Length && pattern[i] == '+')
                        {
                            throw Unsupported("a '+' after a repetition {n,m}");
                        }
                        if (i < pattern.Length && pattern[i] == '?')
                        {
                            output.Append('?');
                            i++;
                        }
                        atomStart = -1;
                        break;
                    }
                default:
                    // '.', '^', '$', '|' and plain characters mean the same in both engines.
                    if (char.IsSurrogate(c))
                    {
                        throw Unsupported("a character outside the Basic Multilingual Plane");
                    }
                    atomStart = output.Length;
                    output.Append(c);
                    i++;
                    break;
            }
        }
        if (groupStarts.Count > 0)
        {
            throw fail($"regular expression {BpeFiles.Show(pattern)}: an unclosed '('");
        }
        return output.ToString();
    }

    private static int TranslateGroupOpening(string pattern, int i, StringBuilder output, Func<string, Exception> unsupported)
    {
        if (i + 1 >= pattern.Length || pattern[i + 1] != '?')
        {
            output.Append('(');
            return i + 1;
        }
        string rest = pattern[i..];
        foreach (string opening in new[] { "(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>", "(?i:", "(?-i:", "(?i)", "(?-i)" })
        {
            if (rest.StartsWith(opening, StringComparison.Ordinal))
            {
                output.Append(opening);
                return i + opening.Length;
            }
        }
        if (rest.StartsWith("(?<", StringComparison.Ordinal) && rest.Length > 3 && char.IsLetter(rest[3]))
        {
            output.Append("(?<");
            return i + 3;
        }
        throw unsupported($"the group {BpeFiles.Show(rest[..Math.Min(rest.Length, 5)])}");
    }

    private static int TranslateClass(string pattern, int i, StringBuilder output, Func<string, Exception> unsupported)
    {
        output.Append('[');
        i++;
        if (i < pattern.Length && pattern[i] == '^')
        {
            output.Append('^');
            i++;
        }
        bool first = true;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            if (c == ']' && !first)
            {
                output.Append(']');
                return i + 1;
            }
            if (c == '\\')
            {
                i = TranslateEscape(pattern, i, output, inClass: true, unsupported);
            }
            else if (c == '[')
            {
                throw unsupported("a nested class or POSIX bracket inside [...]");
            }
            else if (c == '&' && i + 1 < pattern.Length && pattern[i + 1] == '&')
            {
                throw unsupported("a class intersection '&&'");
            }
            else
            {
                if (c == ']')
                {
                    output.Append('\\'); // a ']' first in the class is a literal in both
                }
                output.Append(c);
                i++;
            }
            first = false;
        }
        throw unsupported("an unclosed '['");
    }

    private static int TranslateEscape(string pattern, int i, StringBuilder output, bool inClass, Func<string, Exception> unsupported)
    {
        if (i + 1 >= pattern.Length)
        {
            throw unsupported("a '\\' at the end");
        }
        char e = pattern[i + 1];
        switch (e)
        {
            case 'p' or 'P':
                {
                    if (i + 2 >= pattern.Length || pattern[i + 2] != '{')
                    {
                        throw unsupported($"'\\{e}' without braces");
                    }
                    int close = pattern.IndexOf('}', i + 3);
                    if (close < 0)
                    {
                        throw unsupported($"an unclosed '\\{e}{{'");
                    }
                    string name = pattern[(i + 3)..close];
                    bool negated = e == 'P';
                    if (name.StartsWith('^'))
                    {
                        negated = !negated;
                        name = name[1..];
                    }
                    if (!Categories.Contains(name))
                    {
                        throw unsupported($"the property \\{e}{{{name}}} (only general categories are)");
                    }
                    output.Append(negated ? @"\P{" : @"\p{").Append(name).Append('}');
                    return close + 1;
                }
            case 's' or 'S' or 'd' or 'D' or 'r' or 'n' or 't' or 'f' or 'v' or 'a' or 'e':
                output.Append('\\').Append(e);
                return i + 2;
            case 'A' or 'z' or 'G' when !inClass:
                output.Append('\\').Append(e);
                return i + 2;
            case 'x':
                {
                    if (i + 2 < pattern.Length && pattern[i + 2] == '{')
                    {
                        int close = pattern.IndexOf('}', i + 3);
                        if (close < 0 || !int.TryParse(pattern.AsSpan(i + 3, close - i - 3), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int code)
                            || code > 0xFFFF || code is >= 0xD800 and <= 0xDFFF)
                        {
                            throw unsupported("a '\\x{...}' outside the Basic Multilingual Plane or malformed");
                        }
                        output.Append($@"\u{code:X4}");
                        return close + 1;
                    }
                    if (i + 3 < pattern.Length && Uri.IsHexDigit(pattern[i + 2]) && Uri.IsHexDigit(pattern[i + 3]))
                    {
                        output.Append(pattern, i, 4);
                        return i + 4;
                    }
                    throw unsupported("a malformed '\\x'");
                }
            case 'u':
                if (i + 5 < pattern.Length && pattern.AsSpan(i + 2, 4).ContainsAnyExcept("0123456789abcdefABCDEF") == false)
                {
                    output.Append(pattern, i, 6);
                    return i + 6;
                }
                throw unsupported("a malformed '\\u'");
            default:
                if (char.IsAsciiLetterOrDigit(e))
                {
                    throw unsupported($"the escape '\\{e}'");
                }
                // An escaped punctuation or other character stands for itself in both engines.
                output.Append('\\').Append(e);
                return i + 2;
        }
    }
}
