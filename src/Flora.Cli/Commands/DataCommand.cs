using System.CommandLine;
using Flora.Experiments.Bible;
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
        new("data", "Training data: prepare the Bible data sets, build the embedded corpus.")
        {
            Prepare(console, error),
            ExportCorpus(console, error),
        };

    /// <summary>
    /// <c>flora data prepare [--out DIR] [--force] [--diatheke PATH]</c>: reads the World English Bible and the
    /// Reina-Valera 1909 through diatheke and writes the prepared data directory (<see cref="PreparedData"/>) with
    /// <see cref="BiblePreparation"/>. As root it installs missing Debian packages with apt-get.
    /// </summary>
    private static Command Prepare(IAnsiConsole console, TextWriter error)
    {
        var output = new Option<string>("--out")
        {
            Description = "the directory to write (created with its parents; must not exist unless --force)",
            DefaultValueFactory = _ => PreparedData.DefaultDirectory,
        };
        var force = new Option<bool>("--force") { Description = "replace the directory if it exists" };
        var diatheke = new Option<string>("--diatheke")
        {
            Description = "the diatheke executable (default: diatheke on PATH, from the Debian package 'diatheke')",
            DefaultValueFactory = _ => SwordBible.DefaultExecutable,
        };
        var command = new Command("prepare",
            $"Prepare the Bible data sets from Debian's SWORD packages: the English World English Bible ({SwordBible.WorldEnglishBible}) split for language modelling, "
            + $"and Spanish ({SwordBible.ReinaValera1909}) to English verse pairs for translation, with a manifest of counts and SHA-256 checksums. "
            + "As root, missing Debian packages are installed with apt-get.")
        {
            output,
            force,
            diatheke,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            var result = BiblePreparation.Prepare(new PrepareOptions
            {
                OutputDirectory = parse.GetValue(output)!,
                Force = parse.GetValue(force),
                Diatheke = parse.GetValue(diatheke)!,
                InstallMissingPackages = true,
                Progress = line => console.MarkupLine(Markup.Escape(line)),
            });
            PrintSummary(console, result);
            return 0;
        }));
        return command;
    }

    private static void PrintSummary(IAnsiConsole console, PreparationResult result)
    {
        var m = result.Manifest;
        var files = new Table().Title("files").AddColumns("file", "lines", "pairs", "verses", "chapters", "characters", "bytes", "SHA-256");
        for (int i = 1; i < 7; i++) files.Columns[i].RightAligned();
        foreach (var f in m.Files)
        {
            files.AddRow(f.Name, $"{f.Lines:N0}", Count(f.Pairs), Count(f.Verses), Count(f.Chapters), $"{f.Characters:N0}", $"{f.Bytes:N0}", f.Sha256[..16] + "…");
        }
        console.Write(files);

        var a = m.Alignment;
        var drops = new Table().Title($"alignment {a.Source} → {a.Target}").AddColumns("outcome", "references", "examples");
        drops.Columns[1].RightAligned();
        drops.AddRow("[bold]aligned pairs[/]", $"[bold]{a.Aligned:N0}[/]", "");
        foreach (var (reason, count) in a.DroppedByReason)
        {
            var examples = a.Examples.GetValueOrDefault(reason) ?? [];
            string shown = string.Join(", ", examples.Take(4)) + (count > Math.Min(4, examples.Count) ? ", …" : "");
            drops.AddRow($"dropped: {reason}", $"{count:N0}", Markup.Escape(shown));
        }
        drops.AddRow("[bold]references in either text[/]", $"[bold]{a.References:N0}[/]", "");
        console.Write(drops);
        if (a.RenumberedChapters.Count > 0)
        {
            console.MarkupLine($"renumbered chapters (dropped): {Markup.Escape(string.Join(", ", a.RenumberedChapters))}");
        }
        foreach (var s in m.Sources)
        {
            console.MarkupLine($"{s.Language}: {Markup.Escape(s.Module)} ({Markup.Escape(s.Title ?? "?")}), package {Markup.Escape(s.DebianPackage ?? "?")} {Markup.Escape(s.PackageVersion ?? "(version unknown)")}, module version {Markup.Escape(s.ModuleVersion ?? "unknown")}");
        }
        console.MarkupLine($"wrote [bold]{Markup.Escape(result.Directory)}[/] in {result.Elapsed.TotalSeconds:F1} s");
    }

    private static string Count(int? n) => n is { } v ? $"{v:N0}" : "";

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
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            string path = parse.GetValue(output)!;
            var bible = new SwordBible(EmbeddedCorpus.Module);
            var verses = bible.ReadBooks(EmbeddedCorpusBuilder.Books);
            string text = EmbeddedCorpusBuilder.Layout(verses);
            byte[] gzip = EmbeddedCorpusBuilder.Compress(text);
            string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (directory is not null) Directory.CreateDirectory(directory);
            AtomicFile.WriteAllBytes(path, gzip);

            int chapters = verses.Select(v => (v.Book, v.Chapter)).Distinct().Count();
            int bytes = System.Text.Encoding.UTF8.GetByteCount(text);
            var corpus = TextCorpus.FromText(text, path);
            console.MarkupLine($"wrote [bold]{Markup.Escape(path)}[/]: {EmbeddedCorpusBuilder.Books.Count} books, {chapters} chapters, {verses.Count} verses");
            console.MarkupLine($"text {bytes:N0} bytes UTF-8, compressed {gzip.Length:N0} bytes");
            console.MarkupLine($"split by chapter: train {Describe(corpus.TrainSize)}, validation {Describe(corpus.ValidationSize)}, test {Describe(corpus.TestSize)}");
            console.MarkupLine($"SHA-256 of the text: {EmbeddedCorpusBuilder.Sha256(text)}");
            console.MarkupLine($"read with: {Markup.Escape(bible.CommandLine("BOOK"))} for each book");
            return 0;
        }));
        return command;
    }

    private static string Describe(SplitSize size) => $"{size.Units} chapters / {size.Lines} verses / {size.Characters:N0} characters";
}
