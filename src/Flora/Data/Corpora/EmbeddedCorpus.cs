using System.IO.Compression;
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
    public const string Module = "engWEB2015eb";

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
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Gunzip(ReadCompressed()));
        }
        catch (Exception e) when (e is InvalidDataException or DecoderFallbackException)
        {
            throw new DataFormatException(ResourceName, $"embedded resource is damaged ({e.Message}): rebuild Flora");
        }
    }

    private static byte[] Gunzip(byte[] compressed)
    {
        using var gzip = new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress);
        using var text = new MemoryStream();
        gzip.CopyTo(text);
        return text.ToArray();
    }
}
