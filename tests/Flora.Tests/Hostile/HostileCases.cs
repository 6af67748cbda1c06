using System.CommandLine;
using System.Text.Json;
using Flora.Checkpoints;
using Flora.Cli;
using Flora.Cli.Commands;
using Flora.Data.Tokenizers;
using Flora.Training;
using Spectre.Console;

namespace Flora.Tests.Hostile;

/// <summary>
/// The hostile-input suite's cases, in three families: every number option of every command with values that are
/// not numbers, have commas, are infinite or out of range (generated from the command tree); every path option
/// with the root directory, a file where a directory belongs, a missing path and a read-only place; and runs that
/// lose or corrupt data (issue 14: divergence, a run directory reused, files changed underneath a run, damaged
/// checkpoints, references out of the run, flags that were ignored, signals).
/// </summary>
internal static class HostileCases
{
    private static readonly Lazy<IReadOnlyList<HostileCase>> Cases = new(() => [.. Numbers(), .. Paths(), .. Runs()]);

    public static IReadOnlyList<HostileCase> All => Cases.Value;

    /// <summary>A small GPT run of the suite (seconds); <paramref name="replace"/> holds options (with values) that replace the defaults.</summary>
    public static string[] Tiny(HostileFixture f, string run, int steps, params string[] replace)
    {
        var options = new List<(string Name, string? Value)>
        {
            ("--model", "gpt-tiny"), ("--tokenizer", "bpe:300"), ("--corpus", f.Corpus), ("--seq-len", "32"), ("--batch", "4"),
            ("--steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("--eval-every", "2"), ("--checkpoint-every", "2"),
            ("--warmup", "1"), ("--rank", "4"), ("--out", run),
        };
        for (int i = 0; i < replace.Length; i++)
        {
            bool hasValue = i + 1 < replace.Length && !replace[i + 1].StartsWith("--", StringComparison.Ordinal);
            string? value = hasValue ? replace[i + 1] : null;
            int at = options.FindIndex(o => o.Name == replace[i]);
            if (at >= 0) options[at] = (replace[i], value);
            else options.Add((replace[i], value));
            if (hasValue) i++;
        }
        return ["train", .. options.Where(o => o.Value != "-").SelectMany(o => o.Value is null ? new[] { o.Name } : [o.Name, o.Value])];
    }

    // ---------------------------------------------------------------- numbers

    /// <summary>Arguments that make each command end quickly once its numbers are read (a missing input), so an accepted bad number shows.</summary>
    private static string[] QuickEnd(string command, Sandbox s) => command switch
    {
        "train" => ["--corpus", s.Path("missing.txt"), "--out", s.Run],
        "generate" or "eval" => ["--checkpoint", s.Path("missing")],
        "pilot" => ["--data", s.Path("missing"), "--out", s.Path("out")],
        "theory" or "memory" => ["--quick", "--out", "/dev/null/out"],
        "bench optim" or "bench train" => ["--model", "no-such-model"],
        _ => [],
    };

    private static IEnumerable<HostileCase> Numbers()
    {
        var root = FloraCli.CreateRoot(AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(TextWriter.Null) }), TextWriter.Null);
        foreach (var (path, command) in Commands(root, ""))
        {
            string[] prefix = path == "reproduce" ? ["reproduce", "no-such-experiment"] : path.Split(' ');
            foreach (var option in command.Options)
            {
                var values = BadValues(option).ToList();
                foreach (var (value, why) in values)
                    yield return new HostileCase("numbers", $"{path} {option.Name} '{value}' ({why})")
                    {
                        Arguments = s => [.. prefix, option.Name, value, .. QuickEnd(path, s)],
                        Exit = FloraCli.UsageError,
                        Mentions = _ => value.Length == 0 ? [option.Name] : [option.Name, value],
                        Writes = "run",
                    };
                if (values.Count > 0)
                    yield return new HostileCase("numbers", $"{path} {option.Name} without a value")
                    {
                        Arguments = s => [.. prefix, .. QuickEnd(path, s), option.Name],
                        Exit = FloraCli.UsageError,
                        Mentions = _ => [option.Name],
                        Writes = "run",
                    };
            }
        }
    }

    private static IEnumerable<(string Path, Command Command)> Commands(Command command, string path)
    {
        foreach (var sub in command.Subcommands)
        {
            string p = path.Length == 0 ? sub.Name : path + " " + sub.Name;
            yield return (p, sub);
            foreach (var nested in Commands(sub, p)) yield return nested;
        }
    }

    /// <summary>Values no number option may accept: by the option's type, then just outside its range.</summary>
    private static IEnumerable<(string Value, string Why)> BadValues(Option option)
    {
        Type type = Nullable.GetUnderlyingType(option.ValueType) ?? (option.ValueType.IsArray ? option.ValueType.GetElementType()! : option.ValueType);
        if (type.IsEnum)
        {
            yield return ("5", "a number for a choice");
            yield return ("bogus", "not a choice");
            yield return (string.Join(',', Enum.GetNames(type).Take(2)).ToLowerInvariant(), "two choices joined");
            yield break;
        }
        if (type == typeof(ulong))
        {
            foreach (var v in new[] { ("abc", "not a number"), ("-1", "negative"), ("1.5", "not an integer"), ("18446744073709551616", "overflow"), ("1,000", "thousands separator") })
                yield return v;
            yield break;
        }
        var range = Options.RangeOf(option);
        if (range is null) yield break;
        if (type == typeof(int))
        {
            foreach (var v in new[] { ("abc", "not a number"), ("1.5", "not an integer"), ("1,000", "thousands separator"), ("99999999999", "overflow"),
                         ("inf", "infinity"), ("NaN", "not a number"), ("0x10", "hexadecimal"), ("", "empty") })
                yield return v;
            if (double.IsFinite(range.Min)) yield return (((int)range.Min - (range.MinIncluded ? 1 : 0)).ToString(System.Globalization.CultureInfo.InvariantCulture), "below the range");
            if (range.Min == 0 && !range.MinIncluded) yield return ("-1", "negative");
        }
        else if (type == typeof(float))
        {
            foreach (var v in new[] { ("abc", "not a number"), ("0,5", "decimal comma"), ("inf", "infinity"), ("-Infinity", "infinity"), ("NaN", "not a number"),
                         ("1e39", "overflow"), ("", "empty") })
                yield return v;
            if (range.Min == 0) yield return (range.MinIncluded ? "-0.5" : "0", "below the range");
            if (range.Min == 0 && !range.MinIncluded) yield return ("-0.5", "negative");
            if (double.IsFinite(range.Max)) yield return (range.MaxIncluded ? "1.5" : "1", "above the range");
        }
    }

    // ---------------------------------------------------------------- paths

    private enum PathKind { OutputDirectory, InputFile, InputDirectory }

    /// <summary>A path option: the command, the option (null: the command's argument), what it names, and the other arguments.</summary>
    private sealed record PathOption(string Command, string? Option, PathKind Kind, Func<Sandbox, string[]> Rest, string? Writes = "run", Action<Sandbox>? Setup = null);

    private static IEnumerable<PathOption> PathOptions() =>
    [
        new("train", "--out", PathKind.OutputDirectory, s => Tiny(s.Fixture, "-", 2)[1..]),
        new("train", "--corpus", PathKind.InputFile, s => Tiny(s.Fixture, s.Run, 2, "--corpus", "-")[1..]),
        new("train", "--tokenizer", PathKind.InputDirectory, s => Tiny(s.Fixture, s.Run, 2, "--tokenizer", "-")[1..]),
        new("train", "--data", PathKind.InputDirectory, s => ["--task", "translate", "--model", "gpt-tiny", "--tokenizer", "bpe:300", "--steps", "2", "--out", s.Run]),
        new("train", "--resume", PathKind.InputDirectory, _ => []),
        new("train", "--init-from", PathKind.InputDirectory, s => Tiny(s.Fixture, s.Run, 2)[1..]),
        new("generate", "--checkpoint", PathKind.InputDirectory, _ => ["--max-tokens", "4"]),
        new("eval", "--checkpoint", PathKind.InputDirectory, _ => []),
        new("eval", "--out", PathKind.OutputDirectory, s => ["--checkpoint", s.Path("trained")], Writes: "trained", Setup: s => s.CopyRun("trained")),
        new("pilot", "--data", PathKind.InputDirectory, s => ["--steps", "2", "--batch", "8", "--eval-every", "2", "--out", s.Run]),
        new("pilot", "--out", PathKind.OutputDirectory, _ => ["--data", HostileFixture.FashionMnistSample, "--steps", "2", "--batch", "8", "--eval-every", "2"]),
        new("theory", "--out", PathKind.OutputDirectory, _ => ["--quick"]),
        new("memory", "--out", PathKind.OutputDirectory, _ => ["--quick"]),
        new("inspect", null, PathKind.InputFile, _ => []),
        new("bench compare", "--ours", PathKind.InputFile, _ => []),
        new("reproduce", "--out", PathKind.OutputDirectory, _ => ["figure1", "--quick"]),
    ];

    private static IEnumerable<(string Name, Func<Sandbox, string> Value)> PathValues(PathKind kind) => kind switch
    {
        PathKind.OutputDirectory => [("the root directory", _ => "/"), ("a file", s => s.File("a-file")), ("a read-only directory", s => s.ReadOnlyDirectory())],
        PathKind.InputFile => [("the root directory", _ => "/"), ("a missing file", s => s.Path("missing.txt")), ("/dev/zero", _ => "/dev/zero"), ("a directory", s => s.Dir("a-directory"))],
        _ => [("the root directory", _ => "/"), ("a file", s => s.File("a-file")), ("a missing directory", s => s.Path("missing"))],
    };

    private static IEnumerable<HostileCase> Paths()
    {
        foreach (var p in PathOptions())
            foreach (var (name, value) in PathValues(p.Kind))
            {
                string? chosen = null;
                string Value(Sandbox s) => chosen ??= value(s);
                yield return new HostileCase("paths", $"{p.Command} {p.Option ?? "FILE"} {name}")
                {
                    Setup = s => { p.Setup?.Invoke(s); Value(s); },
                    Arguments = s => [.. p.Command.Split(' '), .. p.Option is null ? [Value(s)] : new[] { p.Option, Value(s) }, .. p.Rest(s).Where(a => a != "-")],
                    Mentions = s => [Value(s)],
                    Writes = p.Writes,
                };
            }
    }

    // ---------------------------------------------------------------- runs

    private static string Checkpoint(string run, int step) => Path.Combine(run, TrainingCheckpoint.Directory, $"step-{step:D8}");

    private static HostileCase Resume(string name, string[] flags, string[] mentions, Action<Sandbox>? damage = null, int steps = 6) => new("runs", name)
    {
        Setup = s => { s.CopyRun(); damage?.Invoke(s); },
        Arguments = s => ["train", "--resume", s.Run, .. steps > 0 ? new[] { "--steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture) } : [], .. flags],
        Mentions = _ => mentions,
        Writes = "run",
    };

    private static IEnumerable<HostileCase> Runs()
    {
        // 2. A finite blow-up: perplexity overflows; the run must stop with a message and metrics that still parse.
        yield return new HostileCase("runs", "a diverging run (adamw --lr 1000)")
        {
            Arguments = s => Tiny(s.Fixture, s.Run, 30, "--optimizer", "adamw", "--lr", "1000"),
            Mentions = _ => ["diverged"],
            Writes = "run",
            Check = (s, _) => MetricsProblem(s.Run),
        };

        // 5, 8. A fresh run into a directory that holds another run, idle or in use.
        yield return new HostileCase("runs", "a fresh run into another run's directory")
        {
            Setup = s => s.CopyRun(),
            Arguments = s => Tiny(s.Fixture, s.Run, 4),
            Mentions = _ => ["--resume"],
        };
        yield return SecondWriter("a fresh run into a run directory in use", s => Tiny(s.Fixture, s.Run, 4));
        yield return SecondWriter("--resume of a run directory in use", s => ["train", "--resume", s.Run]);

        // 6. Files changed underneath a run.
        yield return new HostileCase("runs", "the corpus edited between the run and --resume")
        {
            Setup = s =>
            {
                string corpus = s.Path("corpus.txt");
                File.Copy(s.Fixture.Corpus, corpus);
                var r = s.Fixture.Cli.Run(s.Root, Tiny(s.Fixture, s.Run, 2, "--corpus", corpus));
                if (r.Code != 0) throw new InvalidOperationException($"setting up: {r}");
                File.Copy(Path.Combine(s.Run, MetricsLog.CsvFile), s.Path("metrics.before"));
                File.AppendAllText(corpus, string.Concat(Enumerable.Repeat("\nAnd this verse was added after the run started.\n", 200)));
            },
            Arguments = s => ["train", "--resume", s.Run, "--steps", "4"],
            Mentions = s => ["corpus", s.Path("corpus.txt")],
            Writes = "run",
            Check = (s, _) => File.ReadAllText(Path.Combine(s.Run, MetricsLog.CsvFile)) == File.ReadAllText(s.Path("metrics.before")) ? null : "metrics.csv changed",
        };
        yield return Resume("the tokenizer replaced between the run and --resume", [], ["tokenizer"], s =>
        {
            var other = new BpeTrainer(280);
            other.AddText("a different text makes a different tokenizer, though a valid one");
            other.Train();
            string dir = Path.Combine(s.Run, TokenizerSetup.Directory);
            Directory.Delete(dir, recursive: true);
            other.Save(dir);
        });

        // Found while writing the suite: eval --out replaced whatever directory it named, a run included.
        yield return new HostileCase("runs", "eval --out naming the run directory itself")
        {
            Setup = s => s.CopyRun(),
            Arguments = s => ["eval", "--checkpoint", s.Run, "--out", s.Run],
            Mentions = s => [s.Run],
        };

        // 10. References that lead out of the run.
        yield return new HostileCase("runs", "--resume of a checkpoint copied out of its run")
        {
            Setup = s => Sandbox.Copy(Checkpoint(s.Fixture.TrainedRun, 4), s.Path("loose", "step-00000004")),
            Arguments = s => ["train", "--resume", s.Path("loose", "step-00000004"), "--steps", "6"],
            Mentions = _ => ["outside a run"],
            Writes = "loose",
        };
        foreach (bool absolute in new[] { false, true })
        {
            string how = absolute ? "an absolute path" : "../../victim";
            Action<Sandbox> redirect = s =>
            {
                s.CopyRun("victim");
                File.WriteAllText(Path.Combine(s.Run, TrainingCheckpoint.Directory, TrainingCheckpoint.Latest),
                    absolute ? Checkpoint(s.Path("victim"), 4) : "../../victim/checkpoints/step-00000004");
            };
            yield return Resume($"checkpoints/latest naming another run ({how}), --resume", [], ["latest"], redirect);
            yield return new HostileCase("runs", $"checkpoints/latest naming another run ({how}), generate")
            {
                Setup = s => { s.CopyRun(); redirect(s); },
                Arguments = s => ["generate", "--checkpoint", s.Run, "--max-tokens", "4"],
                Mentions = _ => ["latest"],
            };
        }

        // 9. Damaged checkpoints: bit flips at random offsets of the data, truncation, NaN weights.
        for (int i = 1; i <= 3; i++)
        {
            int flip = i;
            yield return Resume($"a flipped bit in model.safetensors #{flip}, --resume", [], ["checksum", TrainingCheckpoint.ModelFile],
                s => FlipBits(s, Path.Combine(Checkpoint(s.Run, 4), TrainingCheckpoint.ModelFile), 1, flip));
        }
        foreach (var (what, args, writes) in new (string, Func<Sandbox, string[]>, string?)[]
                 {
                     ("generate", s => ["generate", "--checkpoint", s.Run, "--max-tokens", "4"], null),
                     ("eval", s => ["eval", "--checkpoint", s.Run], "run"),
                     ("inspect", s => ["inspect", Path.Combine(Checkpoint(s.Run, 4), TrainingCheckpoint.ModelFile)], null),
                     ("inspect --verify", s => ["inspect", "--verify", s.Run], null),
                 })
            yield return new HostileCase("runs", $"a flipped bit in model.safetensors, {what}")
            {
                Setup = s => { s.CopyRun(); FlipBits(s, Path.Combine(Checkpoint(s.Run, 4), TrainingCheckpoint.ModelFile), 1, 4); },
                Arguments = args,
                Mentions = _ => ["checksum"],
                Writes = writes,
            };
        yield return Resume("two flipped bits in state.safetensors, --resume", [], ["checksum", TrainingCheckpoint.StateFile],
            s => FlipBits(s, Path.Combine(Checkpoint(s.Run, 4), TrainingCheckpoint.StateFile), 2, 5));
        yield return Resume("a truncated model.safetensors, --resume", [], [TrainingCheckpoint.ModelFile], s =>
        {
            string file = Path.Combine(Checkpoint(s.Run, 4), TrainingCheckpoint.ModelFile);
            File.WriteAllBytes(file, File.ReadAllBytes(file)[..20_000]);
        });
        foreach (var (what, args, writes) in new (string, Func<Sandbox, string[]>, string?)[]
                 {
                     ("generate", s => ["generate", "--checkpoint", s.Run, "--max-tokens", "4"], null),
                     ("eval", s => ["eval", "--checkpoint", s.Run], "run"),
                     ("--resume", s => ["train", "--resume", s.Run, "--steps", "6"], "run"),
                 })
            yield return new HostileCase("runs", $"NaN in the weights of a checkpoint, {what}")
            {
                Setup = s => { s.CopyRun(); PutNaN(Checkpoint(s.Run, 4)); },
                Arguments = args,
                Mentions = _ => ["NaN"],
                Writes = writes,
            };

        // 11. Flags that were ignored or changed without a word.
        yield return new HostileCase("runs", "--rank 100000 compresses nothing")
        {
            Arguments = s => Tiny(s.Fixture, s.Run, 2, "--rank", "100000"),
            Mentions = _ => ["100000"],
        };
        yield return new HostileCase("runs", "--lora 100000 is larger than every matrix")
        {
            Arguments = s => Tiny(s.Fixture, s.Run, 2, "--optimizer", "adamw", "--lora", "100000"),
            Mentions = _ => ["--lora 100000"],
        };
        yield return new HostileCase("runs", "--lora 4 --accumulate compressed compresses nothing")
        {
            // Adapters only: the adapters are too small to compress (the paper's LoRA would also train, and compress, the position table).
            Arguments = s => Tiny(s.Fixture, s.Run, 2, "--optimizer", "adamw", "--lora", "4", "--lora-adapters-only", "--accumulate", "compressed", "--tau", "2"),
            Mentions = _ => ["compress"],
        };
        yield return Resume("--resume with --steps below the checkpoint's step", [], ["--steps 2"], steps: 2);
        yield return Resume("--resume of a finished run", [], ["--steps"], steps: 0);
        foreach (var (flag, value) in new (string, string?)[]
                 {
                     ("--model", "gpt-small"), ("--optimizer", "adamw"), ("--lr", "0.5"), ("--out", "elsewhere"), ("--quick", null),
                     ("--init-from", "fixture"), ("--tokenizer", "bpe:1024"), ("--corpus", "fixture-corpus"),
                 })
            yield return new HostileCase("runs", $"--resume with {flag}")
            {
                Setup = s => s.CopyRun(),
                Arguments = s => ["train", "--resume", s.Run, "--steps", "6", flag, .. value switch
                {
                    null => Array.Empty<string>(),
                    "elsewhere" => [s.Path("elsewhere")],
                    "fixture" => [s.Fixture.TrainedRun],
                    "fixture-corpus" => [s.Fixture.Corpus],
                    _ => [value],
                }],
                Mentions = _ => [flag],
                Writes = "run",
            };
        yield return new HostileCase("runs", "generate --source on a language model")
        {
            Setup = s => s.CopyRun(),
            Arguments = s => ["generate", "--checkpoint", s.Run, "--source", "En el principio", "--max-tokens", "4"],
            Mentions = _ => ["--source"],
        };

        // 12. Signals.
        yield return new HostileCase("runs", "SIGTERM while training")
        {
            Custom = (cli, s) =>
            {
                using var p = cli.Start(s.Root, Tiny(s.Fixture, s.Run, 400, "--checkpoint-every", "100", "--eval-every", "100"));
                if (!p.WaitUntil(() => MetricsRows(s.Run) >= 5, TimeSpan.FromSeconds(90))) return p.Wait(TimeSpan.FromSeconds(10)) with { Code = -2 };
                p.Signal(15);
                return p.Wait(TimeSpan.FromSeconds(60));
            },
            Exit = 143,
            Writes = "run",
            Check = (s, _) => LatestStep(s.Run) is var latest && MetricsRows(s.Run) is var rows && latest == rows ? null
                : $"stopped after step {MetricsRows(s.Run)} but the latest checkpoint is step {LatestStep(s.Run)}",
        };
        yield return new HostileCase("runs", "Ctrl+C while preparing")
        {
            Setup = s => File.WriteAllText(s.Path("big.txt"), string.Concat(Enumerable.Repeat(Flora.Data.Corpora.EmbeddedCorpus.ReadText(), 10))),
            Custom = (cli, s) =>
            {
                using var p = cli.Start(s.Root, Tiny(s.Fixture, s.Run, 40, "--corpus", s.Path("big.txt"), "--tokenizer", "bpe:1000"));
                p.WaitUntil(() => p.Output.Contains("preparing", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                Thread.Sleep(100);
                p.Signal(2);
                return p.Wait(TimeSpan.FromSeconds(120));
            },
            Exit = 130,
            Writes = "run",
            Check = (s, r) => r.Text.Contains("writing a checkpoint", StringComparison.Ordinal) && LatestStep(s.Run) == 0
                ? "said it was writing a checkpoint, and wrote none" : null,
        };
    }

    /// <summary>A second flora process while a long run writes the same directory.</summary>
    private static HostileCase SecondWriter(string name, Func<Sandbox, string[]> second) => new("runs", name)
    {
        Custom = (cli, s) =>
        {
            using var first = cli.Start(s.Root, Tiny(s.Fixture, s.Run, 400, "--checkpoint-every", "1", "--eval-every", "100"));
            if (!first.WaitUntil(() => LatestStep(s.Run) >= 2, TimeSpan.FromSeconds(90))) return first.Wait(TimeSpan.FromSeconds(10)) with { Code = -2 };
            return cli.Run(s.Root, second(s));
        },
        Mentions = _ => ["in use"],
        Writes = "run",
    };

    private static int MetricsRows(string run)
    {
        try { return File.Exists(Path.Combine(run, MetricsLog.CsvFile)) ? MetricsLog.ReadCsv(Path.Combine(run, MetricsLog.CsvFile)).Count : 0; }
        catch (IOException) { return 0; }
    }

    private static int LatestStep(string run)
    {
        try
        {
            string latest = Path.Combine(run, TrainingCheckpoint.Directory, TrainingCheckpoint.Latest);
            return File.Exists(latest) ? int.Parse(File.ReadAllText(latest).Trim()["step-".Length..], System.Globalization.CultureInfo.InvariantCulture) : 0;
        }
        catch (Exception e) when (e is IOException or FormatException) { return 0; }
    }

    /// <summary>metrics.jsonl must parse line by line, and checkpoints/latest (if any) must name a complete checkpoint.</summary>
    private static string? MetricsProblem(string run)
    {
        string jsonl = Path.Combine(run, MetricsLog.JsonFile);
        if (File.Exists(jsonl))
            foreach (string line in File.ReadLines(jsonl))
                try { JsonDocument.Parse(line).Dispose(); }
                catch (JsonException) { return $"metrics.jsonl holds a line that is not JSON: {line}"; }
        int latest = LatestStep(run);
        if (latest > 0 && !File.Exists(Path.Combine(Checkpoint(run, latest), TrainingCheckpoint.StateFile))) return $"latest names step {latest}, which is not there";
        return null;
    }

    /// <summary>Flips <paramref name="bits"/> bits at random offsets of a safetensors file's data (after the header); the offsets are logged.</summary>
    private static void FlipBits(Sandbox s, string file, int bits, int salt)
    {
        long dataStart;
        using (var st = SafeTensorsFile.Open(file)) dataStart = st.DataStart;
        byte[] bytes = File.ReadAllBytes(file);
        var random = new Random(s.Fixture.Seed * 31 + salt);
        for (int i = 0; i < bits; i++)
        {
            long offset = random.NextInt64(dataStart, bytes.Length);
            int bit = random.Next(8);
            bytes[offset] ^= (byte)(1 << bit);
            s.Fixture.Log($"flipped bit {bit} at offset {offset} of {file} (data from {dataStart}, seed {s.Fixture.Seed})");
        }
        File.WriteAllBytes(file, bytes);
    }

    /// <summary>Writes NaN into the first weight of a checkpoint's model; the manifest (if any) is brought up to date, as a run that diverged unnoticed would have written it.</summary>
    private static void PutNaN(string checkpoint)
    {
        string file = Path.Combine(checkpoint, TrainingCheckpoint.ModelFile);
        long offset;
        using (var st = SafeTensorsFile.Open(file)) offset = st.DataStart + st.Tensors.First(t => t.DType == SafeTensorDType.F32).Begin;
        using (var stream = new FileStream(file, FileMode.Open, FileAccess.Write))
        {
            stream.Position = offset;
            stream.Write(BitConverter.GetBytes(float.NaN));
        }
        if (File.Exists(Path.Combine(checkpoint, CheckpointManifest.FileName))) CheckpointManifest.Write(checkpoint);
    }
}
