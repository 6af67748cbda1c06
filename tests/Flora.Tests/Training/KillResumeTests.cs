using System.Diagnostics;
using Flora.Reporting;
using Flora.Tests.Hostile;
using Flora.Training;
using Xunit.Abstractions;

namespace Flora.Tests.Training;

/// <summary>
/// The kill-and-resume soak: the flora command killed with SIGKILL again and again at random moments (while
/// starting, while saving its tokenizer, while writing a checkpoint, between steps), each time continued the way a
/// user would (--resume once the run directory holds a run, the same command otherwise). After every kill the run
/// directory must hold only complete things; at the end the metrics must equal an uninterrupted run's, step for
/// step, and no step checkpointed before a kill may be lost.
/// </summary>
public class KillResumeTests(ITestOutputHelper output) : IDisposable
{
    private const int Steps = 40, Kills = 20;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(60);
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-kill-").FullName;

    private string[] Arguments(string run) =>
    [
        "train", "--model", "gpt-tiny", "--tokenizer", "bpe:300", "--corpus", TrainerTests.SmallCorpus(_temp),
        "--seq-len", "32", "--batch", "4", "--steps", $"{Steps}", "--eval-every", "10", "--checkpoint-every", "1",
        "--warmup", "3", "--rank", "4", "--kappa", "16", "--accumulate", "compressed", "--tau", "2", "--dropout", "0.1", "--out", run,
    ];

    private static CliProcess Start(params string[] args) => new InProcessCli().Start(Path.GetTempPath(), args);

    private static int LatestStep(string run)
    {
        try
        {
            string latest = Path.Combine(run, TrainingCheckpoint.Directory, TrainingCheckpoint.Latest);
            return File.Exists(latest) ? int.Parse(File.ReadAllText(latest).Trim()["step-".Length..]) : 0;
        }
        catch (Exception e) when (e is IOException or FormatException) { return 0; }
    }

    /// <summary>
    /// A moment to kill at: a random time while the process starts and prepares; the instant it writes its tokenizer
    /// or a checkpoint; or a few steps on, at a random point of a step (half the kills, so the run makes progress).
    /// Whatever the moment, a run about to finish is killed first, so that a fast machine cannot finish the run before
    /// the kills are done (the last run, after them, finishes).
    /// </summary>
    private static Func<bool> PickMoment(Random random, string run, DateTime started, int latest)
    {
        var clock = Stopwatch.StartNew();
        int delay = random.Next(100, 1500), steps = random.Next(1, 6), extra = random.Next(0, 30);
        Stopwatch? reached = null;
        Func<bool> moment = random.Next(4) switch
        {
            0 => () => clock.ElapsedMilliseconds >= delay,
            1 => () => Writing(run, started) is not null || clock.ElapsedMilliseconds > 4000,
            _ => () => (reached ??= LatestStep(run) >= latest + steps ? Stopwatch.StartNew() : null) is { } r && r.ElapsedMilliseconds >= extra,
        };
        return () => moment() || LatestStep(run) >= Steps - 1;
    }

    /// <summary>What the run started at <paramref name="started"/> is writing right now: its tokenizer, a checkpoint, or null.</summary>
    private static string? Writing(string run, DateTime started)
    {
        bool Fresh(string dir) => Directory.Exists(dir) && Directory.GetLastWriteTimeUtc(dir) >= started;   // not one a killed run left
        if (Fresh(Path.Combine(run, TokenizerSetup.Directory + AtomicDirectory.TempSuffix))) return "while writing the tokenizer";
        string checkpoints = Path.Combine(run, TrainingCheckpoint.Directory);
        try { return Directory.Exists(checkpoints) && Directory.EnumerateDirectories(checkpoints, "*" + AtomicDirectory.TempSuffix).Any(Fresh) ? "while writing a checkpoint" : null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    /// <summary>After a kill: the latest checkpoint (if any) is complete and matches its manifest; a tokenizer (if any) loads.</summary>
    private static void AssertIntact(string run)
    {
        if (LatestStep(run) > 0) TrainingCheckpoint.Verify(TrainingCheckpoint.Resolve(run));
        if (Directory.Exists(Path.Combine(run, TokenizerSetup.Directory))) TokenizerSetup.Identity(Path.Combine(run, TokenizerSetup.Directory));
    }

    [Fact]
    public void Twenty_sigkills_at_random_moments_then_resume_give_the_uninterrupted_curve()
    {
        string whole = Path.Combine(_temp, "whole"), killed = Path.Combine(_temp, "killed");
        using (var p = Start(Arguments(whole)))
        {
            var r = p.Wait(TimeSpan.FromMinutes(2));
            Assert.True(r.Code == 0, $"the uninterrupted run failed: {r}");
        }

        int seed = Environment.TickCount & 0xFFFF;
        var random = new Random(seed);
        var clock = Stopwatch.StartNew();
        int kills = 0, lostSteps = 0;
        var moments = new Dictionary<string, int>();
        while (LatestStep(killed) < Steps)                                    // a kill after the last checkpoint leaves a finished run
        {
            bool resume = File.Exists(Path.Combine(killed, RunManifest.FileName));
            int before = LatestStep(killed);
            var started = DateTime.UtcNow.AddMilliseconds(-20);
            using var p = Start(resume ? ["train", "--resume", killed] : Arguments(killed));
            bool last = kills >= Kills || clock.Elapsed > Budget;
            if (!last) p.WaitUntil(PickMoment(random, killed, started, before), TimeSpan.FromSeconds(30));
            if (last || p.HasExited)
            {
                var r = p.Wait(TimeSpan.FromMinutes(2));
                Assert.True(r.Code == 0, $"a {(resume ? "resumed" : "new")} run failed (seed {seed}): {r}");
                continue;
            }
            string moment = Writing(killed, started) ?? (Directory.Exists(Path.Combine(killed, TrainingCheckpoint.Directory)) ? "between steps" : "while starting or preparing");
            p.Signal(9);
            p.Wait(TimeSpan.FromSeconds(10));
            kills++;
            moments[moment] = moments.GetValueOrDefault(moment) + 1;
            int after = LatestStep(killed);
            if (after < before) lostSteps++;
            output.WriteLine($"kill {kills} {moment}: latest checkpoint step {before} -> {after}");
            AssertIntact(killed);
        }
        output.WriteLine($"seed {seed}: {kills} kills ({string.Join(", ", moments.Select(m => $"{m.Value} {m.Key}"))}) in {clock.Elapsed.TotalSeconds:F0} s");

        var a = MetricsLog.ReadCsv(Path.Combine(whole, MetricsLog.CsvFile));
        var b = MetricsLog.ReadCsv(Path.Combine(killed, MetricsLog.CsvFile));
        Assert.Equal(Steps, a.Count);
        Assert.Equal(a.Select(r => r.Step), b.Select(r => r.Step));
        Assert.Equal(a.Select(r => r.TrainLoss), b.Select(r => r.TrainLoss));
        Assert.Equal(a.Select(r => r.ValidationLoss), b.Select(r => r.ValidationLoss));
        Assert.Equal(0, lostSteps);
        Assert.True(kills >= 10, $"only {kills} kills happened (seed {seed})");
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);
}
