using System.Security.Cryptography;
using System.Text;

namespace Flora.Data.Corpora;

/// <summary>
/// The default English training corpus, built into the Flora assembly so that training needs no download:
/// 37 complete books of the World English Bible (public domain; SWORD module <c>engWEB2015eb</c> from the
/// Debian package <c>sword-text-web</c>), about 2.2 MB of UTF-8 text, stored gzip-compressed as
/// <c>data/corpus/web-english.txt.gz</c> (provenance, licence and checksum in <c>data/corpus/README.md</c>).
/// <para>
/// The books, in canonical order, are the narrative and poetry of Genesis, Exodus, Ruth, 1 and 2 Samuel, Job,
/// Psalms, Proverbs, Ecclesiastes and Isaiah, and the whole New Testament (Matthew to Revelation).
/// </para>
/// <para>
/// Layout of the text: one verse per line, without its reference; one blank line between chapters; no headers
/// (psalm titles and other headings are not part of the verse text and are left out). So the chapters are the
/// paragraphs of the text, and <see cref="Load"/> splits by chapter with the rule of <see cref="TextCorpus"/>:
/// chapter <c>i</c> (from 0, counted through the whole corpus) is validation when <c>i % 20 == 19</c>, test when
/// <c>i % 20 == 9</c>, training otherwise.
/// </para>
/// </summary>
public static class EmbeddedCorpus
{
    /// <summary>The name of the embedded resource in the Flora assembly.</summary>
    public const string ResourceName = "corpus/web-english.txt.gz";

    /// <summary>The file name in the repository, under <c>data/corpus/</c>.</summary>
    public const string FileName = "web-english.txt.gz";

    /// <summary>The SWORD module the text is read from.</summary>
    public const string Module = SwordBible.WorldEnglishBible;

    /// <summary>The name given as <see cref="TextCorpus.Source"/>.</summary>
    public const string SourceName = "embedded corpus " + ResourceName + " (World English Bible)";

    private static readonly Lazy<TextCorpus> Corpus = new(() =>
    {
        var corpus = TextCorpus.FromText(ReadText(), SourceName);
        if (corpus.Unit != CorpusUnit.Paragraph)
        {
            throw new DataFormatException(ResourceName, "the embedded corpus has no chapters (blank-line separated paragraphs)");
        }
        return corpus;
    });

    /// <summary>The books of the corpus, in canonical order.</summary>
    public static IReadOnlyList<string> Books { get; } =
    [
        "Genesis", "Exodus", "Ruth", "1 Samuel", "2 Samuel", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Isaiah",
        .. BibleBooks.Protestant.Where(b => b.IsNewTestament).Select(b => b.Name),
    ];

    /// <summary>The corpus split by chapter (see the class remarks); loaded once and shared.</summary>
    /// <exception cref="DataFormatException">The resource is missing or damaged (a build problem).</exception>
    public static TextCorpus Load() => Corpus.Value;

    /// <summary>The gzip-compressed resource as built into the assembly.</summary>
    public static byte[] ReadCompressed()
    {
        using var stream = typeof(EmbeddedCorpus).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new DataFormatException(ResourceName, "embedded resource missing from the Flora assembly: rebuild Flora");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    /// <summary>The whole text, decompressed.</summary>
    public static string ReadText()
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(DeterministicGzip.Decompress(ReadCompressed()));
        }
        catch (Exception e) when (e is InvalidDataException or DecoderFallbackException)
        {
            throw new DataFormatException(ResourceName, $"embedded resource is damaged ({e.Message}): rebuild Flora");
        }
    }

    /// <summary>Reads <see cref="Books"/> through diatheke and lays them out as the corpus text.</summary>
    /// <param name="bible">A reader of <see cref="Module"/>.</param>
    /// <exception cref="FloraException">diatheke or the module is missing, or its output is not as expected.</exception>
    public static string Build(SwordBible bible)
    {
        ArgumentNullException.ThrowIfNull(bible);
        if (bible.Module != Module)
        {
            throw new ArgumentException($"the embedded corpus is read from {Module}, not {bible.Module}", nameof(bible));
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
