using System.CommandLine;
using Flora.Data.Corpora;
using Flora.Reporting;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora data ...</c>: building and preparing training data. Each subcommand is made by its own
/// method and added to the <c>data</c> command in <see cref="Create"/>.
/// </summary>
internal static class DataCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error) =>
        new("data", "Training data: build the embedded corpus.")
        {
            ExportCorpus(console, error),
        };

    /// <summary>
    /// <c>flora data export-corpus --out FILE</c>: reads the books of <see cref="EmbeddedCorpus"/> through
    /// diatheke and writes the deterministic gzip that is committed as <c>data/corpus/web-english.txt.gz</c>.
    /// </summary>
    private static Command ExportCorpus(IAnsiConsole console, TextWriter error)
    {
        var output = new Option<string>("--out")
        {
            Description = $"the gzip file to write (the committed one: data/corpus/{EmbeddedCorpus.FileName})",
            Required = true,
        };
        var command = new Command("export-corpus",
            $"Developer command: regenerate the embedded English corpus from the World English Bible ({EmbeddedCorpus.Module}) with diatheke.")
        {
            output,
        };
        command.SetAction(parse => FloraCli.Guard(error, () =>
        {
            string path = parse.GetValue(output)!;
            var bible = new SwordBible(EmbeddedCorpus.Module);
            var verses = bible.ReadBooks(EmbeddedCorpus.Books);
            string text = EmbeddedCorpus.Layout(verses);
            byte[] gzip = EmbeddedCorpus.Compress(text);
            string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (directory is not null) Directory.CreateDirectory(directory);
            AtomicFile.WriteAllBytes(path, gzip);

            int chapters = verses.Select(v => (v.Book, v.Chapter)).Distinct().Count();
            int bytes = System.Text.Encoding.UTF8.GetByteCount(text);
            var corpus = TextCorpus.FromText(text, path);
            console.MarkupLine($"wrote [bold]{Markup.Escape(path)}[/]: {EmbeddedCorpus.Books.Count} books, {chapters} chapters, {verses.Count} verses");
            console.MarkupLine($"text {bytes:N0} bytes UTF-8, compressed {gzip.Length:N0} bytes");
            console.MarkupLine($"split by chapter: train {Describe(corpus.TrainSize)}, validation {Describe(corpus.ValidationSize)}, test {Describe(corpus.TestSize)}");
            console.MarkupLine($"SHA-256 of the text: {EmbeddedCorpus.Sha256(text)}");
            console.MarkupLine($"read with: {Markup.Escape(bible.CommandLine("BOOK"))} for each book");
            return 0;
        }));
        return command;
    }

    private static string Describe(SplitSize size) => $"{size.Units} chapters / {size.Lines} verses / {size.Characters:N0} characters";
}
