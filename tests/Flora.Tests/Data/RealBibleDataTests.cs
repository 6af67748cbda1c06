using System.Diagnostics;
using System.Text.Json;
using Flora.Experiments.Bible;
using Flora.Data.Corpora;
using Xunit.Abstractions;

namespace Flora.Tests.Data;

/// <summary>
/// The real data: <c>flora data prepare</c> through the real diatheke and the Debian packages (installed by the
/// README's commands), once for the whole class; then the end-to-end run on it: a short
/// <c>flora train --task translate</c> and <c>flora eval</c> with BLEU and ROUGE.
/// </summary>
public sealed class RealBibleDataTests : IClassFixture<RealBibleDataTests.Prepared>
{
    /// <summary>Runs the real preparation once into a temporary directory.</summary>
    public sealed class Prepared : IDisposable
    {
        public Prepared()
        {
            bool found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
                .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, SwordBible.DefaultExecutable)));
            Assert.True(found, "diatheke is not installed: install it with 'sudo apt-get install diatheke sword-text-web sword-text-sparv' (scripts/deps.sh does this as root)");
            Directory = Path.Combine(Temp, "data", "prepared", "bible-v1");
            var clock = Stopwatch.StartNew();
            (Code, Stdout, Error) = TestCli.RunCli("data", "prepare", "--out", Directory);
            Seconds = clock.Elapsed.TotalSeconds;
        }

        public string Temp { get; } = System.IO.Directory.CreateTempSubdirectory("flora-real-bible-").FullName;
        public string Directory { get; }
        public int Code { get; }
        public string Stdout { get; }
        public string Error { get; }
        public double Seconds { get; }

        public void Dispose() => System.IO.Directory.Delete(Temp, recursive: true);
    }

    private readonly Prepared _prepared;
    private readonly ITestOutputHelper _output;

    public RealBibleDataTests(Prepared prepared, ITestOutputHelper output) => (_prepared, _output) = (prepared, output);

    [Fact]
    public void Real_preparation_through_diatheke()
    {
        _output.WriteLine($"flora data prepare took {_prepared.Seconds:F1} s");
        _output.WriteLine(_prepared.Stdout);
        Assert.True(_prepared.Code == 0, _prepared.Error);
        string dir = _prepared.Directory;
        string stdout = _prepared.Stdout;
        var data = PreparedData.Open(dir);
        var m = data.Manifest;
        Assert.InRange(m.Alignment.Aligned, 29_000, 31_102);
        Assert.InRange(m.Alignment.DroppedByReason["book-only-in-english"], 5_000, 8_000);   // the WEB's deuterocanon
        Assert.Equal(0, m.Alignment.DroppedByReason["book-only-in-spanish"]);
        Assert.Contains("Numbers 13", m.Alignment.RenumberedChapters);
        var pairs = PreparedData.Splits.ToDictionary(s => s, data.ReadPairs);
        Assert.Equal(m.Alignment.Aligned, pairs.Values.Sum(p => p.Count));
        Assert.InRange(pairs[CorpusSplit.Test].Count, 400, 900);
        Assert.InRange(pairs[CorpusSplit.Validation].Count, 400, 900);
        var genesis = pairs.Values.SelectMany(p => p).First(p => p.Reference == "Genesis 1:1");
        Assert.Equal(new VersePair("Genesis 1:1", "EN el principio crió Dios los cielos y la tierra.", "In the beginning, God created the heavens and the earth."), genesis);
        Assert.DoesNotContain(pairs.Values.SelectMany(p => p), p => p.Reference.StartsWith("Numbers 13:", StringComparison.Ordinal));

        var (train, validation, test) = data.ReadLanguageModel();
        Assert.StartsWith("In the beginning, God created the heavens and the earth.\n", train);
        Assert.EndsWith("The grace of the Lord Jesus Christ be with all the saints. Amen.\n", train);
        Assert.Contains("The book of the words of Tobit", train + validation + test);
        Assert.InRange(m.FileEntry("lm-validation.txt")!.Chapters!.Value, 60, 80);
        Assert.InRange(m.FileEntry("lm-test.txt")!.Chapters!.Value, 60, 80);
        Assert.InRange(m.Files.Where(f => f.Kind == "language-model").Sum(f => f.Verses!.Value), 35_000, 38_000);
        Assert.Equal("engWEB2015eb", m.Sources[0].Module);
        Assert.Contains("aligned pairs", stdout);
        Assert.Contains("renumbered chapters (dropped): Numbers 12, Numbers 13", stdout);
    }

    /// <summary>
    /// The "done when": prepare, then a short translation training run (300 steps of a tiny GPT-2 with FLORA
    /// on the CPU) and an evaluation of 100 validation pairs with BLEU and ROUGE, through the command line.
    /// </summary>
    [Fact]
    public void Translation_trains_and_evaluates_end_to_end_on_the_real_pairs()
    {
        Assert.True(_prepared.Code == 0, _prepared.Error);
        string run = Path.Combine(_prepared.Temp, "run");
        var clock = Stopwatch.StartNew();
        var (code, stdout, error) = TestCli.RunCli("train", "--task", "translate", "--data", _prepared.Directory, "--model", "gpt-tiny",
            "--tokenizer", "bpe:1024", "--seq-len", "96", "--max-source", "40", "--max-target", "40", "--steps", "300", "--batch", "16",
            "--eval-every", "100", "--checkpoint-every", "300", "--out", run);
        _output.WriteLine($"training took {clock.Elapsed.TotalSeconds:F1} s");
        _output.WriteLine(stdout);
        Assert.True(code == 0, error);
        Assert.Contains("translation Spanish to English", stdout);
        Assert.Contains("data loading", stdout);

        (code, stdout, error) = TestCli.RunCli("eval", "--checkpoint", run, "--max-pairs", "100", "--max-tokens", "48");
        _output.WriteLine(stdout);
        Assert.True(code == 0, error);
        string evalDirectory = Path.Combine(run, "eval", "validation-step-300");
        using var scores = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalDirectory, "scores.json")));
        var root = scores.RootElement;
        Assert.Equal(100, root.GetProperty("pairs").GetInt32());
        double loss = root.GetProperty("loss").GetDouble();
        Assert.InRange(loss, 0.5, 6.0);                                      // far below ln(1024) = 6.93 after 300 steps
        double bleu = root.GetProperty("bleu").GetProperty("score").GetDouble();
        Assert.InRange(bleu, 0, 100);
        Assert.StartsWith("BLEU = ", root.GetProperty("bleu").GetProperty("line").GetString());
        Assert.InRange(root.GetProperty("rouge").GetProperty("rouge1").GetProperty("f").GetDouble(), 0.01, 1);  // some overlap is learned
        Assert.Equal(100, File.ReadAllLines(Path.Combine(evalDirectory, "hypotheses.txt")).Length);
        Assert.Equal(100, File.ReadAllLines(Path.Combine(evalDirectory, "references.txt")).Length);
        _output.WriteLine($"BLEU {bleu:F2}, loss {loss:F3}");
    }
}
