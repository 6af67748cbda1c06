using System.Text.Json;
using Flora.Reporting;
using Flora.Training;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Training;

/// <summary>
/// Run directories that protect themselves: the lock, run.json, --overwrite, the restart of a run killed before its
/// first checkpoint, checkpoints that fail to write, and runs made before checksums existed (a committed fixture).
/// </summary>
public class RunDirectoryTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-rundir-").FullName;

    private TrainOptions Tiny(string run, int steps = 2) => TrainerTests.Tiny(_temp, run) with { Steps = steps, CheckpointEvery = 2, EvalEvery = 2 };

    private static void Train(TrainOptions options, string? resume = null)
    {
        using var trainer = new Trainer(options, resume);
        trainer.Run();
    }

    [Fact]
    public void A_failed_directory_write_removes_its_temporary_directory_and_keeps_the_old_one()
    {
        string final = Path.Combine(_temp, "step-00000004");
        Directory.CreateDirectory(final);
        File.WriteAllText(Path.Combine(final, "model.safetensors"), "the previous checkpoint");
        var e = Assert.Throws<IOException>(() => AtomicDirectory.Write(final, temp =>
        {
            File.WriteAllText(Path.Combine(temp, "model.safetensors"), new string('x', 10_000));
            throw new IOException("No space left on device");
        }));
        Assert.Contains("No space left", e.Message);
        Assert.False(Directory.Exists(final + AtomicDirectory.TempSuffix), "the temporary directory is still there, holding its space");
        Assert.Equal("the previous checkpoint", File.ReadAllText(Path.Combine(final, "model.safetensors")));
    }

    [Fact]
    public void A_second_writer_is_refused_naming_the_owner_and_a_stale_lock_is_taken_over()
    {
        string run = Directory.CreateDirectory(Path.Combine(_temp, "run")).FullName;
        using (var first = RunLock.Acquire(run, out string? none))
        {
            Assert.Null(none);
            var e = Assert.Throws<FloraException>(() => RunLock.Acquire(run, out _));
            Assert.Contains("in use by process", e.Message);
            Assert.Contains(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
            Assert.NotNull(RunLock.Holder(run));
        }
        Assert.Null(RunLock.Holder(run));
        using (RunLock.Acquire(run, out string? clean)) Assert.Null(clean);   // a clean release leaves no owner behind

        File.WriteAllText(Path.Combine(run, RunLock.OwnerFile), "process 424242 on elsewhere, started 2026-01-01 00:00:00 UTC\n");
        using (RunLock.Acquire(run, out string? stale))
        {
            Assert.NotNull(stale);
            Assert.Contains("process 424242", stale);
            Assert.Contains("ended without releasing it", stale);
        }
    }

    [Fact]
    public void Run_json_records_the_corpus_and_the_tokenizer_and_a_killed_run_restarts_from_it()
    {
        string run = Path.Combine(_temp, "run");
        Train(Tiny(run, 4));
        using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, RunManifest.FileName))))
        {
            var corpus = json.RootElement.GetProperty("corpus");
            string path = corpus.GetProperty("path").GetString()!;
            Assert.True(Path.IsPathRooted(path));
            var identity = FileIdentity.Of(TrainerTests.SmallCorpus(_temp));
            Assert.Equal(identity.Bytes, corpus.GetProperty("bytes").GetInt64());
            Assert.Equal(identity.Sha256, corpus.GetProperty("sha256").GetString());
            Assert.Equal("bpe:300", json.RootElement.GetProperty("tokenizer").GetString());
            Assert.Equal(TokenizerSetup.Identity(Path.Combine(run, TokenizerSetup.Directory)), json.RootElement.GetProperty("tokenizer_hash").GetString());
        }
        string metrics = File.ReadAllText(Path.Combine(run, MetricsLog.CsvFile));

        // As if killed before its first checkpoint: --resume starts again from run.json, with the same numbers.
        Directory.Delete(Path.Combine(run, TrainingCheckpoint.Directory), recursive: true);
        using (var trainer = new Trainer(new TrainOptions { Steps = 0 }, resumeFrom: run))
        {
            Assert.Contains(trainer.Notices, n => n.Contains("no checkpoint yet"));
            Assert.Equal(0, trainer.StartStep);
            trainer.Run();
        }
        Assert.Equal(StepsAndLosses(metrics), StepsAndLosses(File.ReadAllText(Path.Combine(run, MetricsLog.CsvFile))));
    }

    private static string[] StepsAndLosses(string csv) => csv.Split('\n').Select(l => string.Join(',', l.Split(',').Take(2))).ToArray();

    [Fact]
    public void Overwrite_moves_the_old_run_aside_and_best_resumes_inside_its_run()
    {
        string run = Path.Combine(_temp, "run");
        Train(Tiny(run) with { KeepBest = true });
        Assert.Equal(Path.GetFullPath(run), TrainingCheckpoint.RunDirectoryOf(Path.Combine(run, TrainingCheckpoint.Best)));
        Assert.Null(TrainingCheckpoint.RunDirectoryOf(_temp));

        using (var trainer = new Trainer(Tiny(run, 4) with { KeepBest = true }, resumeFrom: Path.Combine(run, TrainingCheckpoint.Best)))
        {
            Assert.Equal(Path.GetFullPath(run), trainer.Options.OutputDirectory);
            trainer.Run();
        }
        Assert.Equal(4, MetricsLog.ReadCsv(Path.Combine(run, MetricsLog.CsvFile)).Count);

        var refused = Assert.Throws<FloraException>(() => new Trainer(Tiny(run)));
        Assert.Contains("--resume", refused.Message);
        using (var trainer = new Trainer(Tiny(run), overwrite: true))
        {
            string notice = Assert.Single(trainer.Notices, n => n.Contains("moved the previous run"));
            string aside = Directory.GetDirectories(_temp, "run.replaced-*").Single();
            Assert.Contains(aside, notice);
            Assert.Equal(4, MetricsLog.ReadCsv(Path.Combine(aside, MetricsLog.CsvFile)).Count);
        }
    }

    [Fact]
    public void A_new_run_that_fails_to_start_leaves_no_directory_behind()
    {
        string run = Path.Combine(_temp, "run");
        var e = Assert.Throws<ArgumentException>(() => new Trainer(Tiny(run) with { Optimizer = new Flora.Optim.OptimizerSpec { Name = "flora", Rank = 100_000 } }));
        Assert.Contains("compresses none", e.Message);
        Assert.False(Directory.Exists(run), "the refused run left its directory behind: the next run there would be refused");
    }

    private static string LegacyRun => Path.Combine(AppContext.BaseDirectory, "Data", "legacy-run");

    [Fact]
    public void A_run_written_before_checksums_still_generates_resumes_and_says_it_is_unverified()
    {
        var (code, stdout, error) = RunCli("generate", "--checkpoint", LegacyRun, "--max-tokens", "4", "--greedy");
        Assert.True(code == 0, error);
        Assert.StartsWith("warning: ", error);
        Assert.Contains("unverified", error.Split('\n')[0]);
        Assert.Contains("In the beginning", stdout);

        (code, _, error) = RunCli("inspect", "--verify", LegacyRun);
        Assert.Equal(Flora.Cli.FloraCli.UserError, code);
        Assert.Contains("cannot be verified", error);

        string copy = Path.Combine(_temp, "legacy");
        Hostile.Sandbox.Copy(LegacyRun, copy);
        (code, _, error) = RunCli("train", "--resume", copy, "--steps", "3");
        Assert.True(code == 0, error);
        Assert.Contains("no run.json", error);
        Assert.Contains("unverified", error);
        Assert.True(TrainingCheckpoint.Verify(TrainingCheckpoint.Resolve(copy)).Verified, "the resumed run's new checkpoint has no manifest");
        (code, stdout, error) = RunCli("inspect", "--verify", copy);
        Assert.True(code == 0, error);
        Assert.Contains("verified", stdout);
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);
}
