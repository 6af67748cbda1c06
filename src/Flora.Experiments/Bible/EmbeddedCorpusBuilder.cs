using System.Security.Cryptography;
using System.Text;
using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>
/// Rebuilds the text of <see cref="EmbeddedCorpus"/> from the Debian SWORD packages (<c>flora data export-corpus</c>):
/// <see cref="Books"/> read through diatheke, laid out one verse per line with a blank line between chapters.
/// </summary>
public static class EmbeddedCorpusBuilder
{
    /// <summary>The books of the corpus, in canonical order.</summary>
    public static IReadOnlyList<string> Books { get; } =
    [
        "Genesis", "Exodus", "Ruth", "1 Samuel", "2 Samuel", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Isaiah",
        .. BibleBooks.Protestant.Where(b => b.IsNewTestament).Select(b => b.Name),
    ];

    /// <summary>Reads <see cref="Books"/> through diatheke and lays them out as the corpus text.</summary>
    /// <param name="bible">A reader of <see cref="EmbeddedCorpus.Module"/>.</param>
    /// <exception cref="FloraException">diatheke or the module is missing, or its output is not as expected.</exception>
    public static string Build(SwordBible bible)
    {
        ArgumentNullException.ThrowIfNull(bible);
        if (bible.Module != EmbeddedCorpus.Module)
        {
            throw new ArgumentException($"the embedded corpus is read from {EmbeddedCorpus.Module}, not {bible.Module}", nameof(bible));
        }
        return Layout(bible.ReadBooks(Books));
    }

    /// <summary>
    /// The corpus layout: one verse text per line, a blank line between chapters (a new book or chapter
    /// number starts a chapter), "\n" line endings, ending with "\n".
    /// </summary>
    /// <exception cref="ArgumentException">There are no verses, or a verse is empty or spans lines.</exception>
    public static string Layout(IEnumerable<Verse> verses)
    {
        ArgumentNullException.ThrowIfNull(verses);
        var text = new StringBuilder();
        (string Book, int Chapter)? chapter = null;
        foreach (var verse in verses)
        {
            if (verse.Text.Length == 0 || verse.Text.Contains('\n') || verse.Text.Contains('\r'))
            {
                throw new ArgumentException($"{verse.Reference}: a verse must be one non-empty line", nameof(verses));
            }
            if (chapter is { } c && c != (verse.Book, verse.Chapter)) text.Append('\n');
            chapter = (verse.Book, verse.Chapter);
            text.Append(verse.Text).Append('\n');
        }
        if (chapter is null) throw new ArgumentException("no verses", nameof(verses));
        return text.ToString();
    }

    /// <summary>Compresses the text (UTF-8) into the deterministic gzip of the committed file.</summary>
    public static byte[] Compress(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return DeterministicGzip.Compress(Encoding.UTF8.GetBytes(text));
    }

    /// <summary>The SHA-256 of the text's UTF-8 bytes, as lower-case hex: the checksum recorded in the README.</summary>
    public static string Sha256(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }
}
