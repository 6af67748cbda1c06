using System.Net;
using System.Text;
using System.Text.RegularExpressions;

using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>
/// Turns the OSIS markup of one verse, as <c>diatheke -f internal</c> prints it, into plain text.
/// <list type="bullet">
/// <item>Word-level elements (<c>w</c>, <c>q</c>, <c>seg</c>, <c>transChange</c>, <c>divineName</c> and any element not
/// named below) are unwrapped: their text stays, the tags go without leaving a space.</item>
/// <item>Structural tags (<c>l</c>, <c>lg</c>, <c>lb</c>, <c>p</c>, <c>div</c>, <c>chapter</c>, <c>verse</c>,
/// <c>milestone</c>, <c>list</c>, <c>item</c>) become a space: they mark line and paragraph breaks, such as the
/// lines of a psalm.</item>
/// <item>Headings and labels that are not verse text (<c>title</c>, <c>speaker</c>) go with their content.</item>
/// <item>Notes (<c>note</c>: footnotes and cross-references) go with their content. The modules leave out the
/// space where a note sat between two words ("God&lt;note/&gt;created"), so a note between two non-blank
/// characters becomes a space when what follows it starts a word: after the note, closing punctuation
/// (<c>” ) ] } , . ; : ? ! »</c>) is kept in place, and a space is put after it when a letter, a digit or
/// opening punctuation (<c>“ ‘ ( [ ¿ ¡ «</c>) comes next and the character before the note is neither blank
/// nor opening punctuation. Thus "God, “who", "Omega,” says", "Jude, a servant", but "gerahs);" and "word’s".</item>
/// <item>Everything from the end of the book (<c>&lt;div type="book" eID=…/&gt;</c>) or the start of a glossary,
/// introduction, preface, appendix or colophon division on is cut: the World English Bible appends its
/// glossary to Revelation 22:21.</item>
/// <item>Character entities are decoded, control characters dropped, and every run of white space (line breaks
/// included) becomes one space; the result is trimmed. Curly quotes and dashes are kept as they are.</item>
/// </list>
/// </summary>
internal static partial class OsisText
{
    /// <summary>Stands for a removed note until the spacing around it is decided; never in the output.</summary>
    private const char NoteMark = '\u0001';

    private static readonly HashSet<string> Structural = new(StringComparer.OrdinalIgnoreCase)
    {
        "l", "lg", "lb", "p", "div", "chapter", "verse", "milestone", "list", "item", "br",
    };

    private static readonly HashSet<string> Dropped = new(StringComparer.OrdinalIgnoreCase) { "note", "title", "speaker" };

    private static readonly HashSet<string> NonScriptureDivisions = new(StringComparer.OrdinalIgnoreCase)
    {
        "glossary", "introduction", "preface", "appendix", "colophon", "afterword",
    };

    /// <summary>Converts the markup of one verse to plain text as described on the class.</summary>
    /// <param name="markup">The verse's markup, without its reference prefix.</param>
    /// <returns>The text; empty when the verse holds no text (a verse the translation leaves out).</returns>
    public static string ToPlainText(string markup)
    {
        ArgumentNullException.ThrowIfNull(markup);
        var text = new StringBuilder(markup.Length);
        string? skipping = null;    // the element whose content is being dropped
        int depth = 0;              // nesting of that element inside itself
        int i = 0;
        while (i < markup.Length)
        {
            int open = markup.IndexOf('<', i);
            int close = open < 0 ? -1 : markup.IndexOf('>', open + 1);
            if (open < 0 || close < 0)
            {
                if (skipping is null) AppendText(text, markup.AsSpan(i));
                break;
            }
            if (skipping is null) AppendText(text, markup.AsSpan(i, open - i));
            i = close + 1;
            var tag = Tag.Parse(markup.AsSpan(open + 1, close - open - 1));
            if (skipping is not null)
            {
                if (!string.Equals(tag.Name, skipping, StringComparison.OrdinalIgnoreCase) || tag.SelfClosing) continue;
                depth += tag.End ? -1 : 1;
                if (depth == 0)
                {
                    text.Append(IsNote(skipping) ? NoteMark : ' ');
                    skipping = null;
                }
                continue;
            }
            if (tag.Name.Length == 0) continue;
            if (EndsScripture(tag)) break;
            if (Dropped.Contains(tag.Name))
            {
                if (tag.SelfClosing || tag.End)
                {
                    text.Append(IsNote(tag.Name) ? NoteMark : ' ');
                }
                else
                {
                    (skipping, depth) = (tag.Name, 1);
                }
                continue;
            }
            if (Structural.Contains(tag.Name)) text.Append(' ');
        }
        return NormaliseSpaces(ResolveNotes(text.ToString()));
    }

    private static bool IsNote(string name) => string.Equals(name, "note", StringComparison.OrdinalIgnoreCase);

    /// <summary>The end of a book, or the start of a division that is not Bible text.</summary>
    private static bool EndsScripture(Tag tag)
    {
        if (!string.Equals(tag.Name, "div", StringComparison.OrdinalIgnoreCase) || tag.Type is null) return false;
        if (string.Equals(tag.Type, "book", StringComparison.OrdinalIgnoreCase)) return tag.IsEndMilestone;
        return NonScriptureDivisions.Contains(tag.Type) && !tag.End && !tag.IsEndMilestone;
    }

    /// <summary>Appends text between tags: entities decoded, control characters dropped, line breaks as spaces.</summary>
    private static void AppendText(StringBuilder text, ReadOnlySpan<char> raw)
    {
        if (raw.IsEmpty) return;
        string decoded = raw.Contains('&') ? WebUtility.HtmlDecode(raw.ToString()) : raw.ToString();
        foreach (char c in decoded)
        {
            if (char.IsWhiteSpace(c)) text.Append(' ');
            else if (!char.IsControl(c)) text.Append(c);
        }
    }

    /// <summary>Replaces each run of note marks by nothing or by one space (see the class remarks).</summary>
    private static string ResolveNotes(string text)
    {
        if (!text.Contains(NoteMark)) return text;
        var result = new StringBuilder(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            if (text[i] != NoteMark)
            {
                result.Append(text[i++]);
                continue;
            }
            char before = result.Length > 0 ? result[^1] : ' ';
            while (i < text.Length && text[i] == NoteMark) i++;
            while (i < text.Length && (IsClosing(text[i]) || text[i] == NoteMark))
            {
                if (text[i] != NoteMark) result.Append(text[i]);
                i++;
            }
            if (i < text.Length && !char.IsWhiteSpace(before) && !IsOpening(before) &&
                (char.IsLetterOrDigit(text[i]) || IsOpening(text[i])))
            {
                result.Append(' ');
            }
        }
        return result.ToString();
    }

    private static bool IsClosing(char c) => c is '”' or ')' or ']' or '}' or ',' or '.' or ';' or ':' or '?' or '!' or '»';

    private static bool IsOpening(char c) => c is '“' or '‘' or '(' or '[' or '{' or '¿' or '¡' or '«';

    private static string NormaliseSpaces(string text) => Spaces().Replace(text, " ").Trim();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();

    /// <summary>The parts of a tag that matter here: its name, whether it ends or closes itself, and two attributes.</summary>
    private readonly record struct Tag(string Name, bool End, bool SelfClosing, string? Type, bool IsEndMilestone)
    {
        /// <summary>Reads the inside of <c>&lt;…&gt;</c>, such as <c>div eID="x" type="book"/</c>.</summary>
        public static Tag Parse(ReadOnlySpan<char> inside)
        {
            bool end = inside.StartsWith("/");
            if (end) inside = inside[1..];
            bool selfClosing = inside.EndsWith("/");
            if (selfClosing) inside = inside[..^1];
            int nameLength = 0;
            while (nameLength < inside.Length && (char.IsLetterOrDigit(inside[nameLength]) || inside[nameLength] is ':' or '-' or '_'))
            {
                nameLength++;
            }
            string name = inside[..nameLength].ToString();
            string attributes = inside[nameLength..].ToString();
            string? type = null;
            bool endMilestone = false;
            foreach (Match m in Attribute().Matches(attributes))
            {
                if (m.Groups[1].ValueSpan.Equals("type", StringComparison.OrdinalIgnoreCase)) type = m.Groups[2].Success ? m.Groups[2].Value : m.Groups[3].Value;
                if (m.Groups[1].ValueSpan.Equals("eID", StringComparison.OrdinalIgnoreCase)) endMilestone = true;
            }
            return new Tag(name, end, selfClosing, type, endMilestone);
        }
    }

    [GeneratedRegex("""([A-Za-z_:][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")]
    private static partial Regex Attribute();
}
