using System.ComponentModel;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>What <see cref="BiblePreparation.Prepare"/> does.</summary>
public sealed record PrepareOptions
{
    /// <summary>The directory to write; its parent is created when missing.</summary>
    public string OutputDirectory { get; init; } = PreparedData.DefaultDirectory;

    /// <summary>Replace the directory when it exists; without it an existing directory is an error.</summary>
    public bool Force { get; init; }

    /// <summary>The diatheke executable: a name looked up on PATH or a path.</summary>
    public string Diatheke { get; init; } = SwordBible.DefaultExecutable;

    /// <summary>
    /// Install missing Debian packages with apt-get. Honoured only when the process runs as root
    /// (<see cref="Environment.IsPrivilegedProcess"/>); otherwise missing packages are named in the error.
    /// </summary>
    public bool InstallMissingPackages { get; init; }

    /// <summary>Receives one line per step (which module is read, what was read, which file is written); may be called from several threads, never at once.</summary>
    public Action<string>? Progress { get; init; }
}

/// <summary>A data file's name and bytes, before they are written.</summary>
public sealed record PreparedFileContent(string Name, byte[] Bytes);

/// <summary>Everything a prepared directory holds, in memory: the data files, then the manifest that lists them.</summary>
/// <param name="Files">The six data files in <see cref="PreparedData.DataFiles"/> order.</param>
/// <param name="Manifest">The manifest, whose checksums are those of <paramref name="Files"/>.</param>
/// <param name="Alignment">The alignment the pairs came from.</param>
public sealed record PreparedContent(IReadOnlyList<PreparedFileContent> Files, PreparedManifest Manifest, BibleAlignment Alignment);

/// <summary>The outcome of <see cref="BiblePreparation.Prepare"/>.</summary>
/// <param name="Directory">The full path of the directory written.</param>
/// <param name="Manifest">Its manifest.</param>
/// <param name="Alignment">The alignment of the pairs.</param>
/// <param name="Elapsed">The time the preparation took.</param>
public sealed record PreparationResult(string Directory, PreparedManifest Manifest, BibleAlignment Alignment, TimeSpan Elapsed);

/// <summary>
/// Builds the prepared Bible data (<see cref="PreparedData"/> describes the files) from the Debian packages
/// <c>diatheke</c>, <c>sword-text-web</c> (English, <see cref="SwordBible.WorldEnglishBible"/>) and
/// <c>sword-text-sparv</c> (Spanish, <see cref="SwordBible.ReinaValera1909"/>).
/// <list type="number">
/// <item>Checks that diatheke runs and lists both modules; missing Debian packages are installed with apt-get when
/// allowed and running as root, otherwise named in the error.</item>
/// <item>Reads each module whole (<see cref="SwordBible.WholeBibleKey"/>, one diatheke call per module, both at once),
/// empty verses kept, and checks that each has text for all 66 books of <see cref="BibleBooks.Protestant"/>.</item>
/// <item>Lays out the English verses with text as the language-model text and splits it by chapter (<see cref="TextCorpus"/>);
/// aligns Spanish to English (<see cref="BibleAlignment"/>) and splits the pairs by reference (<see cref="ParallelCorpus"/>).</item>
/// <item>Writes the files into a new hidden sibling directory (<c>.NAME.partial-*</c>), the manifest last, and renames it to
/// the output directory only when everything is written; on an error the partial directory is deleted, and a crash
/// leaves at most a hidden <c>.partial-*</c> directory without a complete manifest next to the output, never a
/// directory of the output's name. An existing output directory is an error unless <see cref="PrepareOptions.Force"/>;
/// then it is moved aside and deleted only after the new one is in place.</item>
/// </list>
/// </summary>
public static class BiblePreparation
{
    /// <summary>The language of the pairs' second field and of <see cref="SwordBible.ReinaValera1909"/>.</summary>
    public const string SourceLanguage = "spanish";

    /// <summary>The language of the pairs' third field and of <see cref="SwordBible.WorldEnglishBible"/>.</summary>
    public const string TargetLanguage = "english";

    /// <summary>The language-model split rule as recorded in the manifest.</summary>
    public const string LanguageModelRule =
        "English World English Bible, every book of the module in its order; one verse per line, one blank line between chapters. " +
        "Chapter i (from 0, counted through the whole text) goes to validation when i % 20 == 19, to test when i % 20 == 9, to train otherwise.";

    /// <summary>The pairs split rule as recorded in the manifest.</summary>
    public const string PairsRule =
        "bucket = SHA-256 of the UTF-8 reference ('Genesis 1:1'), first 8 bytes as a big-endian unsigned 64-bit integer, mod 100; " +
        "buckets 0-1 go to test, 2-3 to validation, 4-99 to train. Lines keep the order of the Bible.";

    /// <summary>The alignment rule as recorded in the manifest.</summary>
    public const string AlignmentRule =
        "Pairs by identical book, chapter and verse; texts with markup removed and white space collapsed to single spaces. " +
        "Dropped: books or verses only one module has, verses without text in either module, and every verse of a renumbered chapter: " +
        "a chapter whose last verse(s) have no text in one module while the other has text for them, and the next chapter of the same book.";

    /// <summary>Prepares the data as described on the class.</summary>
    /// <exception cref="FloraException">The output exists (without <see cref="PrepareOptions.Force"/>), diatheke, a module or a package is missing,
    /// diatheke's output is unexpected, or a result would be empty.</exception>
    public static PreparationResult Prepare(PrepareOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.OutputDirectory);
        var clock = Stopwatch.StartNew();
        var gate = new object();
        void Report(string message)
        {
            if (options.Progress is null) return;
            lock (gate) options.Progress(message);
        }

        string output = Path.GetFullPath(options.OutputDirectory);
        CheckOutput(output, options.Force);

        Report($"checking diatheke ({options.Diatheke}) and the SWORD modules {SwordBible.WorldEnglishBible} and {SwordBible.ReinaValera1909}");
        var english = new SwordBible(SwordBible.WorldEnglishBible, options.Diatheke);
        var spanish = new SwordBible(SwordBible.ReinaValera1909, options.Diatheke);
        CheckRequirements(english, [english.Module, spanish.Module], options.InstallMissingPackages && Environment.IsPrivilegedProcess, Report);
        var titles = english.ModuleDescriptions();

        var englishRead = Task.Run(() => ReadModule(english, titles, Report));
        var spanishRead = Task.Run(() => ReadModule(spanish, titles, Report));
        try
        {
            Task.WaitAll(englishRead, spanishRead);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
        var (englishVerses, englishSource) = englishRead.Result;
        var (spanishVerses, spanishSource) = spanishRead.Result;

        string? diathekeVersion = options.Diatheke == SwordBible.DefaultExecutable ? DebianPackages.InstalledVersion("diatheke") : null;
        var reader = new PreparedReader(options.Diatheke, "diatheke", diathekeVersion);
        Report("aligning the Spanish and English verses and splitting the data");
        var content = Build(englishVerses, spanishVerses, englishSource, spanishSource, reader);
        var a = content.Alignment;
        Report($"aligned {a.Aligned:N0} of {a.References:N0} references, dropped {a.DroppedReferences:N0}");

        Write(content, output, options.Force, afterFile: name => Report($"wrote {name}"));
        clock.Stop();
        Report($"moved the finished files into place: {output}");
        return new PreparationResult(output, content.Manifest, content.Alignment, clock.Elapsed);
    }

    /// <summary>Fails when the output exists and may not be replaced, or is not a directory.</summary>
    private static void CheckOutput(string output, bool force)
    {
        if (File.Exists(output)) throw new FloraException($"{output} exists and is a file, not a directory: choose another --out");
        if (Directory.Exists(output) && !force)
        {
            throw new FloraException($"{output} already exists: use --force to replace it, or --out to write elsewhere");
        }
    }

    /// <summary>
    /// Checks that diatheke runs and lists the modules. Missing Debian packages (diatheke itself, or the package of a
    /// module diatheke does not list) are installed with apt-get when <paramref name="install"/> is true, and named in
    /// a <see cref="FloraException"/> otherwise.
    /// </summary>
    /// <param name="bible">A reader whose <see cref="SwordBible.Executable"/> is the diatheke to check.</param>
    /// <param name="modules">The modules needed.</param>
    /// <param name="install">Install missing packages (the caller has checked that this process runs as root).</param>
    /// <param name="progress">Receives a line before installing.</param>
    /// <exception cref="FloraException">Something is missing and not installed, or the installation fails.</exception>
    public static void CheckRequirements(SwordBible bible, IReadOnlyList<string> modules, bool install, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(bible);
        ArgumentNullException.ThrowIfNull(modules);
        var missing = MissingPackages(bible, modules, out string why);
        if (missing.Count == 0) return;
        if (!install) throw DebianPackages.MissingError(missing, why);
        progress?.Invoke($"installing Debian packages: {string.Join(' ', missing)} ({why})");
        DebianPackages.Install(missing);
        missing = MissingPackages(bible, modules, out why);
        if (missing.Count > 0) throw new FloraException($"still missing after installing with apt-get: {string.Join(' ', missing)} ({why})");
    }

    /// <summary>The Debian packages that would provide what is missing, and why in words.</summary>
    private static List<string> MissingPackages(SwordBible bible, IReadOnlyList<string> modules, out string why)
    {
        IReadOnlyList<string> installed;
        try
        {
            installed = bible.InstalledModules();
        }
        catch (FloraException e) when (e.InnerException is Win32Exception)
        {
            if (bible.Executable != SwordBible.DefaultExecutable)
            {
                throw new FloraException($"diatheke not found at '{bible.Executable}' ({e.InnerException.Message}): give the path of a diatheke executable with --diatheke, or leave it out to use diatheke from the Debian package 'diatheke'", e);
            }
            why = "diatheke not found";
            var packages = new List<string> { "diatheke" };
            foreach (string module in modules)
            {
                string? package = SwordBible.DebianPackageOf(module);
                if (package is not null && DebianPackages.InstalledVersion(package) is null) packages.Add(package);
            }
            return packages;
        }
        var absent = modules.Where(m => !installed.Contains(m, StringComparer.Ordinal)).ToList();
        why = absent.Count == 0 ? "" : $"SWORD modules not installed: {string.Join(", ", absent)}";
        var unknown = absent.Where(m => SwordBible.DebianPackageOf(m) is null).ToList();
        if (unknown.Count > 0)
        {
            throw new FloraException($"SWORD modules not installed: {string.Join(", ", unknown)}: install the Debian packages that provide them (see 'apt-cache search sword-text')");
        }
        return absent.Select(m => SwordBible.DebianPackageOf(m)!).ToList();
    }

    /// <summary>Reads a whole module and checks it has text for the 66 books.</summary>
    private static (IReadOnlyList<Verse> Verses, PreparedSource Source) ReadModule(SwordBible bible, IReadOnlyDictionary<string, string> titles, Action<string> report)
    {
        string title = titles.GetValueOrDefault(bible.Module) ?? bible.Module;
        report($"reading {bible.Module} ({title}) with diatheke: {SwordBible.WholeBibleKey}");
        var clock = Stopwatch.StartNew();
        var verses = bible.ReadRangeWithEmptyVerses(SwordBible.WholeBibleKey);
        string command = bible.CommandLine(SwordBible.WholeBibleKey);
        var withText = verses.Where(v => BibleAlignment.NormalizeText(v.Text).Length > 0).ToList();
        if (withText.Count == 0)
        {
            throw new FloraException($"diatheke printed no verse with text for {bible.Module}: the result is empty (command: {command})");
        }
        var books = withText.Select(v => v.Book).ToHashSet(StringComparer.Ordinal);
        var lacking = BibleBooks.Protestant.Where(b => !books.Contains(b.Name)).Select(b => b.Name).ToList();
        if (lacking.Count > 0)
        {
            throw new FloraException($"unexpected diatheke output for {bible.Module}: no text for {lacking.Count} of the 66 books ({string.Join(", ", lacking.Take(5))}{(lacking.Count > 5 ? ", ..." : "")}) (command: {command})");
        }
        string? package = SwordBible.DebianPackageOf(bible.Module);
        var source = new PreparedSource(
            bible.Module == SwordBible.WorldEnglishBible ? TargetLanguage : SourceLanguage,
            bible.Module, titles.GetValueOrDefault(bible.Module), package,
            package is null ? null : DebianPackages.InstalledVersion(package), ModuleVersion(bible.Module), command,
            verses.Count, withText.Count, books.Count, withText.Select(v => (v.Book, v.Chapter)).Distinct().Count());
        var perBook = withText.GroupBy(v => v.Book).Select(g => $"{g.Key} {g.Count()}");
        report($"read {bible.Module}: {verses.Count:N0} verses ({withText.Count:N0} with text) in {source.Books} books, {source.Chapters:N0} chapters, {clock.Elapsed.TotalSeconds:F1} s");
        report($"  {bible.Module} verses by book: {string.Join(", ", perBook)}");
        return (verses, source);
    }

    /// <summary>
    /// The content of the prepared directory from the two texts: the language-model splits of the English text, the
    /// aligned and split pairs, and the manifest. Pure: reads and writes nothing.
    /// </summary>
    /// <param name="english">The English verses (target), empty ones included.</param>
    /// <param name="spanish">The Spanish verses (source), empty ones included.</param>
    /// <param name="englishSource">Provenance of the English text; its counts are filled in here. Null for a minimal description.</param>
    /// <param name="spanishSource">Provenance of the Spanish text, likewise.</param>
    /// <param name="reader">The program that read them; null for diatheke, version unknown.</param>
    /// <exception cref="FloraException">A text has no verse with text, no pair aligns, or a split would be empty.</exception>
    public static PreparedContent Build(IReadOnlyList<Verse> english, IReadOnlyList<Verse> spanish,
        PreparedSource? englishSource = null, PreparedSource? spanishSource = null, PreparedReader? reader = null)
    {
        ArgumentNullException.ThrowIfNull(english);
        ArgumentNullException.ThrowIfNull(spanish);
        var englishText = english.Select(v => v with { Text = BibleAlignment.NormalizeText(v.Text) }).Where(v => v.Text.Length > 0).ToList();
        if (englishText.Count == 0) throw new FloraException("the English text has no verse with text: the result would be empty");
        if (!spanish.Any(v => BibleAlignment.NormalizeText(v.Text).Length > 0)) throw new FloraException("the Spanish text has no verse with text: the result would be empty");

        var corpus = TextCorpus.FromText(EmbeddedCorpusBuilder.Layout(englishText), "World English Bible");
        var alignment = BibleAlignment.Align(spanish, english);
        if (alignment.Aligned == 0) throw new FloraException("no verse of the Spanish and English texts aligned: the result would be empty");

        var files = new List<PreparedFileContent>();
        var entries = new List<PreparedFile>();
        foreach (var split in PreparedData.Splits)
        {
            string name = PreparedData.LanguageModelFile(split);
            string text = corpus.Text(split);
            if (text.Length == 0) throw new FloraException($"{name} would be empty: the English text has too few chapters to split");
            int verses = text.Split('\n').Count(l => l.Length > 0);
            int chapters = text.Split("\n\n").Length;
            Add(name, "language-model", split, text, pairs: null, verses, chapters);
        }
        foreach (var split in PreparedData.Splits)
        {
            string name = PreparedData.PairsFile(split);
            var pairs = ParallelCorpus.Select(alignment.Pairs, split);
            if (pairs.Count == 0) throw new FloraException($"{name} would be empty: only {alignment.Aligned} pairs aligned");
            Add(name, "pairs", split, ParallelCorpus.Format(pairs), pairs.Count, verses: null, chapters: null);
        }

        var byReason = BibleAlignment.Reasons.ToDictionary(r => BibleAlignment.Key(r, SourceLanguage, TargetLanguage), alignment.Dropped);
        var examples = BibleAlignment.Reasons.Where(r => alignment.Dropped(r) > 0)
            .ToDictionary(r => BibleAlignment.Key(r, SourceLanguage, TargetLanguage), alignment.Examples);
        var manifest = new PreparedManifest(
            PreparedData.FormatVersion,
            PreparedData.Name,
            "The World English Bible for language modelling, and Reina-Valera 1909 (Spanish) to World English Bible (English) verse pairs for translation, from the SWORD modules of Debian.",
            reader ?? new PreparedReader(SwordBible.DefaultExecutable, "diatheke", null),
            [Counted(englishSource, TargetLanguage, SwordBible.WorldEnglishBible, english), Counted(spanishSource, SourceLanguage, SwordBible.ReinaValera1909, spanish)],
            entries,
            new PreparedAlignment(SourceLanguage, TargetLanguage, AlignmentRule, alignment.References, alignment.Aligned,
                alignment.DroppedReferences, byReason, examples, alignment.RenumberedChapters),
            new PreparedSplitRules(LanguageModelRule, PairsRule));
        return new PreparedContent(files, manifest, alignment);

        void Add(string name, string kind, CorpusSplit split, string text, int? pairs, int? verses, int? chapters)
        {
            byte[] bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text);
            files.Add(new PreparedFileContent(name, bytes));
            entries.Add(new PreparedFile(name, kind, PreparedData.SplitName(split), text.Count(c => c == '\n'), pairs, verses, chapters,
                text.EnumerateRunes().Count(), bytes.Length, Convert.ToHexStringLower(SHA256.HashData(bytes))));
        }
    }

    /// <summary>A source description with the counts of its verses.</summary>
    private static PreparedSource Counted(PreparedSource? source, string language, string module, IReadOnlyList<Verse> verses)
    {
        var withText = verses.Where(v => BibleAlignment.NormalizeText(v.Text).Length > 0).ToList();
        source ??= new PreparedSource(language, module, null, SwordBible.DebianPackageOf(module), null, null, "", 0, 0, 0, 0);
        return source with
        {
            References = verses.Count,
            VersesWithText = withText.Count,
            Books = withText.Select(v => v.Book).Distinct().Count(),
            Chapters = withText.Select(v => (v.Book, v.Chapter)).Distinct().Count(),
        };
    }

    /// <summary>
    /// Writes the content into <paramref name="directory"/> as described on the class: all files into a hidden sibling
    /// directory, the manifest last, then a rename.
    /// </summary>
    /// <param name="content">What to write.</param>
    /// <param name="directory">The output directory.</param>
    /// <param name="force">Replace an existing directory.</param>
    /// <param name="afterFile">Called with each file name after it is written (for progress; a test throws from it to simulate a failure).</param>
    /// <exception cref="FloraException">The directory exists and <paramref name="force"/> is false.</exception>
    public static void Write(PreparedContent content, string directory, bool force, Action<string>? afterFile = null)
    {
        ArgumentNullException.ThrowIfNull(content);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        string output = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        CheckOutput(output, force);
        string parent = Path.GetDirectoryName(output) ?? throw new ArgumentException($"'{directory}' is a root directory", nameof(directory));
        string name = Path.GetFileName(output);
        Directory.CreateDirectory(parent);
        string partial = Path.Combine(parent, $".{name}.partial-{Guid.NewGuid():N}");
        Directory.CreateDirectory(partial);
        try
        {
            foreach (var file in content.Files)
            {
                WriteFile(Path.Combine(partial, file.Name), file.Bytes);
                afterFile?.Invoke(file.Name);
            }
            WriteFile(Path.Combine(partial, PreparedData.ManifestFile), Encoding.UTF8.GetBytes(content.Manifest.ToJson()));
            afterFile?.Invoke(PreparedData.ManifestFile);
            MoveIntoPlace(partial, output, force);
        }
        catch
        {
            TryDelete(partial);
            throw;
        }
    }

    private static void WriteFile(string path, byte[] bytes)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Renames the finished directory to the output; an existing output (with force) is moved aside first and deleted after.</summary>
    private static void MoveIntoPlace(string partial, string output, bool force)
    {
        CheckOutput(output, force);
        if (!Directory.Exists(output))
        {
            Directory.Move(partial, output);
            return;
        }
        string parent = Path.GetDirectoryName(output)!;
        string old = Path.Combine(parent, $".{Path.GetFileName(output)}.replaced-{Guid.NewGuid():N}");
        Directory.Move(output, old);
        try
        {
            Directory.Move(partial, output);
        }
        catch
        {
            Directory.Move(old, output);
            throw;
        }
        TryDelete(old);
    }

    private static void TryDelete(string directory)
    {
        try { if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>
    /// The <c>Version</c> of a module's SWORD configuration file, looked for in the places SWORD reads
    /// (<c>$SWORD_PATH</c>, <c>~/.sword</c>, <c>/usr/share/sword</c>, <c>/usr/local/share/sword</c>); null when not found.
    /// </summary>
    private static string? ModuleVersion(string module)
    {
        var roots = new List<string>();
        if (Environment.GetEnvironmentVariable("SWORD_PATH") is { Length: > 0 } swordPath) roots.Add(swordPath);
        if (Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home) roots.Add(Path.Combine(home, ".sword"));
        roots.Add("/usr/share/sword");
        roots.Add("/usr/local/share/sword");
        foreach (string root in roots)
        {
            string mods = Path.Combine(root, "mods.d");
            if (!Directory.Exists(mods)) continue;
            foreach (string conf in Directory.EnumerateFiles(mods, "*.conf").Order(StringComparer.Ordinal))
            {
                try
                {
                    string? section = null;
                    foreach (string raw in File.ReadLines(conf))
                    {
                        string line = raw.Trim();
                        if (line.StartsWith('[') && line.EndsWith(']')) section = line[1..^1];
                        else if (string.Equals(section, module, StringComparison.OrdinalIgnoreCase) && line.StartsWith("Version=", StringComparison.Ordinal))
                            return line["Version=".Length..].Trim();
                    }
                }
                catch (IOException) { }
                catch (UnauthorizedAccessException) { }
            }
        }
        return null;
    }
}
