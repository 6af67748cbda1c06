using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Flora.Experiments.Bible;
using Flora.Cli;
using Flora.Data.Corpora;
using Spectre.Console;
using Xunit.Abstractions;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Data;

/// <summary>
/// <c>flora data prepare</c>: the verse alignment and its drop accounting, the split rules, the pairs file reader,
/// the manifest and its checksums, the all-or-nothing output directory (all on synthetic verses or a fake diatheke).
/// The real preparation through the real diatheke is in <see cref="RealBibleDataTests"/>.
/// </summary>
public sealed class PreparedDataTests : IDisposable
{
    private const string Web = SwordBible.WorldEnglishBible;
    private const string Rv = SwordBible.ReinaValera1909;

    private readonly string _temp = Directory.CreateTempSubdirectory("flora-prepared-").FullName;
    private readonly ITestOutputHelper _output;

    public PreparedDataTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static Verse V(string book, int chapter, int verse, string text) => new(book, chapter, verse, text);

    // ---- Alignment ----

    [Fact]
    public void Alignment_pairs_equal_references_and_gives_every_other_reference_one_reason()
    {
        Verse[] spanish =
        [
            V("Genesis", 1, 1, "uno"), V("Genesis", 1, 2, "dos"), V("Genesis", 1, 3, ""), V("Genesis", 1, 4, "cuatro"),
            V("Genesis", 1, 5, "  "), V("Genesis", 1, 6, "seis"), V("Genesis", 1, 7, "siete"), V("Genesis", 1, 8, "ocho"),
            V("Genesis", 1, 1, "otra vez"), V("Genesis", 2, 2, "dos-dos"), V("Exodus", 1, 1, "Éxodo"),
        ];
        Verse[] english =
        [
            V("Genesis", 1, 1, "one"), V("Genesis", 1, 2, " two\twith\r\na  tab "), V("Genesis", 1, 3, "three"),
            V("Genesis", 1, 5, ""), V("Genesis", 1, 6, "six"), V("Genesis", 1, 7, "\n"), V("Genesis", 1, 8, "eight"),
            V("Genesis", 2, 1, "two-one"), V("Genesis", 2, 2, "two-two"), V("Tobit", 1, 1, "Tobit"), V("Tobit", 1, 2, ""),
        ];

        var a = BibleAlignment.Align(spanish, english);

        Assert.Equal(
            [new VersePair("Genesis 1:1", "uno", "one"), new VersePair("Genesis 1:2", "dos", "two with a tab"), new VersePair("Genesis 1:6", "seis", "six"),
             new VersePair("Genesis 1:8", "ocho", "eight"), new VersePair("Genesis 2:2", "dos-dos", "two-two")],
            a.Pairs);
        var expected = new Dictionary<AlignmentDropReason, string[]>
        {
            [AlignmentDropReason.BookOnlyInSource] = ["Exodus 1:1"],
            [AlignmentDropReason.BookOnlyInTarget] = ["Tobit 1:1", "Tobit 1:2"],
            [AlignmentDropReason.VerseOnlyInSource] = ["Genesis 1:4"],
            [AlignmentDropReason.VerseOnlyInTarget] = ["Genesis 2:1"],
            [AlignmentDropReason.EmptyInBoth] = ["Genesis 1:5"],
            [AlignmentDropReason.EmptyInSource] = ["Genesis 1:3"],
            [AlignmentDropReason.EmptyInTarget] = ["Genesis 1:7"],
            [AlignmentDropReason.RenumberedChapter] = [],
            [AlignmentDropReason.DuplicateReference] = ["Genesis 1:1"],
        };
        foreach (var reason in BibleAlignment.Reasons)
        {
            Assert.Equal(expected[reason], a.Examples(reason));
            Assert.Equal(expected[reason].Length, a.Dropped(reason));
        }
        Assert.Equal(13, a.References);
        Assert.Equal(8, a.DroppedReferences);
        Assert.Equal(a.References, a.Aligned + BibleAlignment.Reasons.Where(r => r != AlignmentDropReason.DuplicateReference).Sum(a.Dropped));
        Assert.Empty(a.RenumberedChapters);
    }

    [Fact]
    public void A_chapter_ending_in_verses_without_text_is_renumbered_with_the_next_chapter()
    {
        // The Spanish module leaves Numbers 12:16 empty and starts Numbers 13 with its text; the English module leaves
        // Romans 16:25-27 empty (the text is at Romans 14:23). 3 John 1:15 exists only in English and is empty: no sign.
        var spanish = new List<Verse>();
        var english = new List<Verse>();
        foreach (var (chapter, verses) in new[] { (12, 4), (13, 3), (14, 2) })
        {
            for (int v = 1; v <= verses; v++)
            {
                spanish.Add(V("Numbers", chapter, v, chapter == 12 && v == 4 ? "" : $"es {chapter}:{v}"));
                english.Add(V("Numbers", chapter, v, $"en {chapter}:{v}"));
            }
        }
        for (int v = 1; v <= 3; v++)
        {
            spanish.Add(V("Romans", 16, v, $"es 16:{v}"));
            english.Add(V("Romans", 16, v, v == 1 ? "en 16:1" : ""));
            spanish.Add(V("3 John", 1, v, $"es {v}"));
            english.Add(V("3 John", 1, v, $"en {v}"));
        }
        english.Add(V("3 John", 1, 4, ""));

        var a = BibleAlignment.Align(spanish, english);

        Assert.Equal(["Numbers 12", "Numbers 13", "Romans 16"], a.RenumberedChapters);
        Assert.Equal(["Numbers 14:1", "Numbers 14:2", "3 John 1:1", "3 John 1:2", "3 John 1:3"], a.Pairs.Select(p => p.Reference));
        Assert.Equal(["Numbers 12:1", "Numbers 12:2", "Numbers 12:3", "Numbers 13:1", "Numbers 13:2", "Numbers 13:3", "Romans 16:1"],
            a.Examples(AlignmentDropReason.RenumberedChapter));
        Assert.Equal(1, a.Dropped(AlignmentDropReason.EmptyInSource));
        Assert.Equal(2, a.Dropped(AlignmentDropReason.EmptyInTarget));
        Assert.Equal(["3 John 1:4"], a.Examples(AlignmentDropReason.VerseOnlyInTarget));
        Assert.Equal(a.References, a.Aligned + a.DroppedReferences);
    }

    [Theory]
    [InlineData("  a\tb\r\nc\u00a0 d  ", "a b c d")]
    [InlineData("\n\t ", "")]
    [InlineData("EN el principio", "EN el principio")]
    public void Texts_are_one_line_with_single_spaces(string text, string expected)
    {
        Assert.Equal(expected, BibleAlignment.NormalizeText(text));
    }

    [Fact]
    public void Parsing_with_empty_verses_keeps_them_in_order()
    {
        var verses = SwordBible.ParseWithEmptyVerses(
            "Romans 16:24: <w>The</w> grace.\nRomans 16:25:    \nRomans 16:26: <note placement=\"foot\">x</note>\nRevelation of John 1:1: Text\ncontinued.\n(engWEB2015eb)\n", Web);

        Assert.Equal([V("Romans", 16, 24, "The grace."), V("Romans", 16, 25, ""), V("Romans", 16, 26, ""), V("Revelation", 1, 1, "Text continued.")], verses);
        Assert.Throws<FloraException>(() => SwordBible.ParseWithEmptyVerses("Romans 16:24: x\n", Web));
    }

    // ---- Split rules ----

    private static IEnumerable<string> SyntheticReferences() =>
        from book in BibleBooks.Protestant
        from chapter in Enumerable.Range(1, 25)
        from verse in Enumerable.Range(1, 20)
        select $"{book.Name} {chapter}:{verse}";

    [Fact]
    public void Pair_split_is_the_documented_hash_of_the_reference()
    {
        foreach (string reference in SyntheticReferences().Take(500))
        {
            byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes(reference));
            int bucket = (int)(BinaryPrimitives.ReadUInt64BigEndian(hash) % 100);
            Assert.Equal(bucket, ParallelCorpus.BucketOf(reference));
            var expected = bucket < 2 ? CorpusSplit.Test : bucket < 4 ? CorpusSplit.Validation : CorpusSplit.Train;
            Assert.Equal(expected, ParallelCorpus.SplitOf(reference));
        }
    }

    [Fact]
    public void Pair_split_has_the_documented_proportions_and_ignores_order()
    {
        var references = SyntheticReferences().ToList();
        var counts = references.GroupBy(ParallelCorpus.SplitOf).ToDictionary(g => g.Key, g => g.Count());
        double n = references.Count;
        Assert.InRange(counts[CorpusSplit.Test] / n, 0.017, 0.023);
        Assert.InRange(counts[CorpusSplit.Validation] / n, 0.017, 0.023);
        Assert.InRange(counts[CorpusSplit.Train] / n, 0.95, 0.97);

        var pairs = references.Select(r => new VersePair(r, "es", "en")).ToList();
        var reversed = Enumerable.Reverse(pairs).ToList();
        foreach (var split in PreparedData.Splits)
        {
            var selected = ParallelCorpus.Select(pairs, split);
            Assert.Equal(selected.Reverse().Select(p => p.Reference), ParallelCorpus.Select(reversed, split).Select(p => p.Reference));
            Assert.All(selected, p => Assert.Equal(split, ParallelCorpus.SplitOf(p.Reference)));
        }
    }

    // ---- The pairs file ----

    private string WriteFile(string name, byte[] bytes)
    {
        string path = Path.Combine(_temp, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string WriteFile(string name, string text) => WriteFile(name, Encoding.UTF8.GetBytes(text));

    [Fact]
    public void Pairs_file_round_trips()
    {
        VersePair[] pairs = [new("Genesis 1:1", "EN el principio crió Dios los cielos y la tierra.", "In the beginning, God created the heavens and the earth."),
                             new("Song of Solomon 1:1", "Cantar de los cantares, el cual es de Salomón.", "The Song of songs, which is Solomon’s.")];
        string text = ParallelCorpus.Format(pairs);

        Assert.Equal("Genesis 1:1\tEN el principio crió Dios los cielos y la tierra.\tIn the beginning, God created the heavens and the earth.\n" +
                     "Song of Solomon 1:1\tCantar de los cantares, el cual es de Salomón.\tThe Song of songs, which is Solomon’s.\n", text);
        Assert.Equal(pairs, ParallelCorpus.Load(WriteFile("pairs.tsv", text)));
        Assert.Equal(pairs, ParallelCorpus.Load(WriteFile("crlf.tsv", "\uFEFF" + text.Replace("\n", "\r\n"))));
        Assert.Throws<ArgumentException>(() => ParallelCorpus.Format([new VersePair("Genesis 1:1", "a\tb", "c")]));
        Assert.Throws<ArgumentException>(() => ParallelCorpus.Format([new VersePair("Genesis", "a", "c")]));
    }

    [Theory]
    [InlineData("Genesis 1:1\ta\tb\nGenesis 1:2\ta\n", "line 2: expected 3 tab-separated fields (reference, spanish, english), found 2")]
    [InlineData("Genesis 1:1\ta\tb\tc\n", "line 1: expected 3 tab-separated fields (reference, spanish, english), found 4")]
    [InlineData("Genesis 1:1\t \tb\n", "line 1 (Genesis 1:1): the spanish text is empty")]
    [InlineData("Genesis 1:1\ta\t\n", "line 1 (Genesis 1:1): the english text is empty")]
    [InlineData("Genesis 1:1\ta\tb\n\nGenesis 1:2\ta\tb\n", "line 2: empty line")]
    [InlineData("a\tb\tc\n", "line 1: 'a' is not a reference like 'Genesis 1:1'")]
    [InlineData("Genesis 1:1\ta\tb\nGenesis 1:1\tc\td\n", "line 2: Genesis 1:1 appears again (first on line 1)")]
    [InlineData("", "the file is empty")]
    public void Pairs_file_errors_name_the_file_and_line(string content, string expected)
    {
        string path = WriteFile("bad.tsv", content);
        var e = Assert.Throws<DataFormatException>(() => ParallelCorpus.Load(path));
        Assert.Equal(path, e.Path);
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Pairs_file_with_invalid_utf8_names_the_line()
    {
        byte[] bytes = [.. "Genesis 1:1\tEn el principio\tIn the beginning\nGenesis 1:2\tY la tierra "u8, 0xE1, (byte)' ', .. "estaba\tThe earth\n"u8];
        string path = WriteFile("latin1.tsv", bytes);
        var e = Assert.Throws<DataFormatException>(() => ParallelCorpus.Load(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("line 2: not valid UTF-8 (bad byte 0xE1 at byte 25 of the line)", e.Message);
    }

    [Fact]
    public void Missing_pairs_file_is_an_error_naming_it()
    {
        string path = Path.Combine(_temp, "none.tsv");
        Assert.Contains("file not found", Assert.Throws<DataFormatException>(() => ParallelCorpus.Load(path)).Message);
    }

    // ---- Content, manifest and checksums (synthetic verses) ----

    /// <summary>40 chapters of 30 verses in two books each side; Spanish lacks one verse, English has a book more.</summary>
    private static (List<Verse> English, List<Verse> Spanish) SyntheticBible()
    {
        var english = new List<Verse>();
        var spanish = new List<Verse>();
        foreach (string book in new[] { "Genesis", "Exodus" })
        {
            for (int c = 1; c <= 20; c++)
            {
                for (int v = 1; v <= 30; v++)
                {
                    english.Add(V(book, c, v, $"English {book} {c}:{v}."));
                    if (!(book == "Exodus" && c == 3 && v == 7)) spanish.Add(V(book, c, v, $"Español {book} {c}:{v}."));
                }
            }
        }
        english.Add(V("Tobit", 1, 1, "Tobit's book."));
        return (english, spanish);
    }

    private static PreparedContent SyntheticContent()
    {
        var (english, spanish) = SyntheticBible();
        return BiblePreparation.Build(english, spanish);
    }

    [Fact]
    public void Build_splits_the_language_model_text_by_chapter_and_the_pairs_by_reference()
    {
        var content = SyntheticContent();
        var m = content.Manifest;

        Assert.Equal(PreparedData.DataFiles, content.Files.Select(f => f.Name));
        Assert.Equal(PreparedData.DataFiles, m.Files.Select(f => f.Name));
        string Text(string name) => Encoding.UTF8.GetString(content.Files.Single(f => f.Name == name).Bytes);

        // Chapter i goes to validation when i % 20 == 19 (Genesis 20, Exodus 20), to test when i % 20 == 9 (Genesis 10, Exodus 10), Tobit 1 is chapter 40.
        string validation = Text("lm-validation.txt");
        Assert.StartsWith("English Genesis 20:1.\n", validation);
        Assert.Contains("\n\nEnglish Exodus 20:1.\n", validation);
        Assert.Equal(60, validation.Split('\n').Count(l => l.Length > 0));
        Assert.StartsWith("English Genesis 10:1.\nEnglish Genesis 10:2.\n", Text("lm-test.txt"));
        Assert.EndsWith("English Exodus 19:30.\n\nTobit's book.\n", Text("lm-train.txt"));
        Assert.Equal((36 * 30 + 1, 37), (m.FileEntry("lm-train.txt")!.Verses, m.FileEntry("lm-train.txt")!.Chapters));

        Assert.Equal(1199, m.Alignment.Aligned);
        Assert.Equal(1201, m.Alignment.References);
        Assert.Equal(1, m.Alignment.DroppedByReason["verse-only-in-english"]);
        Assert.Equal(1, m.Alignment.DroppedByReason["book-only-in-english"]);
        Assert.Equal(["Tobit 1:1"], m.Alignment.Examples["book-only-in-english"]);
        Assert.Equal(BibleAlignment.Reasons.Count, m.Alignment.DroppedByReason.Count);
        Assert.Equal(1199, PreparedData.Splits.Sum(s => m.FileEntry(PreparedData.PairsFile(s))!.Pairs));
        foreach (var split in PreparedData.Splits)
        {
            var lines = Text(PreparedData.PairsFile(split)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.NotEmpty(lines);
            Assert.All(lines, l => Assert.Equal(split, ParallelCorpus.SplitOf(l.Split('\t')[0])));
        }
        foreach (var (file, entry) in content.Files.Zip(m.Files))
        {
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(file.Bytes)), entry.Sha256);
            Assert.Equal(file.Bytes.Length, entry.Bytes);
        }
        Assert.Equal(["english", "spanish"], m.Sources.Select(s => s.Language));
        Assert.Equal((1201, 40 + 1), (m.Sources[0].References, m.Sources[0].Chapters));
        Assert.Equal(2, m.Sources[1].Books);
        Assert.Contains("i % 20 == 19", m.SplitRules.LanguageModel);
        Assert.Contains("mod 100", m.SplitRules.Pairs);
    }

    [Fact]
    public void Build_refuses_empty_results()
    {
        var (english, spanish) = SyntheticBible();
        Assert.Contains("English text has no verse with text", Assert.Throws<FloraException>(() => BiblePreparation.Build([V("Genesis", 1, 1, " ")], spanish)).Message);
        Assert.Contains("Spanish text has no verse with text", Assert.Throws<FloraException>(() => BiblePreparation.Build(english, [])).Message);
        var exodus = spanish.Where(v => v.Book == "Exodus").Select(v => v with { Book = "Leviticus" }).ToList();
        Assert.Contains("no verse of the Spanish and English texts aligned", Assert.Throws<FloraException>(() => BiblePreparation.Build(english, exodus)).Message);
        var few = spanish.Take(20).ToList();
        Assert.Contains("would be empty", Assert.Throws<FloraException>(() => BiblePreparation.Build(english, few)).Message);
    }

    [Fact]
    public void Written_directory_opens_and_reads_back()
    {
        var content = SyntheticContent();
        string dir = Path.Combine(_temp, "out", "bible-v1");
        BiblePreparation.Write(content, dir, force: false);

        Assert.Equal(PreparedData.DataFiles.Append(PreparedData.ManifestFile).Order(), Directory.GetFiles(dir).Select(f => Path.GetFileName(f)).Order());
        Assert.Equal([dir], Directory.GetFileSystemEntries(Path.GetDirectoryName(dir)!));   // no partial directory left
        var data = PreparedData.Open(dir);
        Assert.Equal(content.Manifest.ToJson(), data.Manifest.ToJson());
        Assert.Equal(content.Alignment.Pairs.Where(p => ParallelCorpus.SplitOf(p.Reference) == CorpusSplit.Test), data.ReadPairs(CorpusSplit.Test));
        var (train, validation, test) = data.ReadLanguageModel();
        Assert.Equal(Encoding.UTF8.GetString(content.Files[0].Bytes), train);
        Assert.StartsWith("English Genesis 20:1.", validation);
        Assert.StartsWith("English Genesis 10:1.", test);
        string json = File.ReadAllText(Path.Combine(dir, PreparedData.ManifestFile));
        Assert.Contains("\"formatVersion\": 1", json);
        Assert.Contains("\"book-only-in-english\": 1", json);
    }

    [Fact]
    public void A_changed_file_fails_the_checksum_check_naming_it()
    {
        string dir = Path.Combine(_temp, "bible-v1");
        BiblePreparation.Write(SyntheticContent(), dir, force: false);
        string path = Path.Combine(dir, "pairs-test.tsv");
        byte[] bytes = File.ReadAllBytes(path);
        bytes[^2] ^= 0x01;
        File.WriteAllBytes(path, bytes);

        var e = Assert.Throws<DataFormatException>(() => PreparedData.Open(dir));
        Assert.Equal(path, e.Path);
        Assert.Contains("SHA-256 mismatch", e.Message);
        Assert.Contains("flora data prepare --force", e.Message);

        File.Delete(path);
        Assert.Contains("file not found", Assert.Throws<DataFormatException>(() => PreparedData.Open(dir)).Message);
        File.Delete(Path.Combine(dir, PreparedData.ManifestFile));
        var missing = Assert.Throws<DataFormatException>(() => PreparedData.Open(dir));
        Assert.Equal(Path.Combine(dir, PreparedData.ManifestFile), missing.Path);
    }

    [Fact]
    public void A_manifest_of_another_format_version_or_malformed_is_refused()
    {
        string dir = Path.Combine(_temp, "bible-v1");
        BiblePreparation.Write(SyntheticContent(), dir, force: false);
        string manifest = Path.Combine(dir, PreparedData.ManifestFile);
        File.WriteAllText(manifest, File.ReadAllText(manifest).Replace("\"formatVersion\": 1", "\"formatVersion\": 2"));
        Assert.Contains("format version 2", Assert.Throws<DataFormatException>(() => PreparedData.Open(dir)).Message);
        File.WriteAllText(manifest, "{ not json");
        Assert.Contains("not a valid manifest", Assert.Throws<DataFormatException>(() => PreparedData.Open(dir)).Message);
    }

    // ---- No partial output ----

    [Fact]
    public void A_failure_while_writing_leaves_no_directory_that_looks_complete()
    {
        string parent = Path.Combine(_temp, "prepared");
        string dir = Path.Combine(parent, "bible-v1");
        var written = new List<string>();

        var e = Assert.Throws<IOException>(() => BiblePreparation.Write(SyntheticContent(), dir, force: false, afterFile: name =>
        {
            written.Add(name);
            if (name == "pairs-train.tsv") throw new IOException("disk full (simulated)");
        }));

        Assert.Equal("disk full (simulated)", e.Message);
        Assert.Equal(["lm-train.txt", "lm-validation.txt", "lm-test.txt", "pairs-train.tsv"], written);
        Assert.False(Directory.Exists(dir));
        Assert.Empty(Directory.GetFileSystemEntries(parent));   // the partial sibling directory was removed too
    }

    [Fact]
    public void A_failure_while_replacing_keeps_the_old_directory()
    {
        string dir = Path.Combine(_temp, "bible-v1");
        BiblePreparation.Write(SyntheticContent(), dir, force: false);
        string before = File.ReadAllText(Path.Combine(dir, PreparedData.ManifestFile));

        Assert.Throws<IOException>(() => BiblePreparation.Write(SyntheticContent(), dir, force: true,
            afterFile: name => { if (name == PreparedData.ManifestFile) throw new IOException("crash before the rename (simulated)"); }));

        Assert.Equal(before, File.ReadAllText(Path.Combine(dir, PreparedData.ManifestFile)));
        PreparedData.Open(dir);
        Assert.Equal([dir], Directory.GetFileSystemEntries(_temp));
    }

    [Fact]
    public void An_existing_directory_is_replaced_only_with_force()
    {
        string dir = Path.Combine(_temp, "bible-v1");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "old.txt"), "old");

        var e = Assert.Throws<FloraException>(() => BiblePreparation.Write(SyntheticContent(), dir, force: false));
        Assert.Contains("already exists: use --force", e.Message);
        Assert.True(File.Exists(Path.Combine(dir, "old.txt")));

        BiblePreparation.Write(SyntheticContent(), dir, force: true);
        Assert.False(File.Exists(Path.Combine(dir, "old.txt")));
        PreparedData.Open(dir);
        Assert.Equal([dir], Directory.GetFileSystemEntries(_temp));   // the old directory, moved aside, is gone
    }

    // ---- Preparation through a fake diatheke ----

    private string FakeDiatheke(string script)
    {
        string path = Path.Combine(_temp, $"fake-diatheke-{Guid.NewGuid():N}");
        File.WriteAllText(path, "#!/bin/sh\n" + script + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private const string ModuleLists =
        "if [ \"$2\" = system ]; then\n" +
        "  if [ \"$4\" = modulelistnames ]; then echo engWEB2015eb; echo spaRV1909eb; else printf 'Biblical Texts:\\nengWEB2015eb : Fake English\\nspaRV1909eb : Fake Spanish\\n'; fi\n" +
        "  exit 0\n" +
        "fi\n";

    /// <summary>diatheke output of all 66 books, 3 chapters of 10 verses each, as the module prints it (SWORD book names, OSIS word markup).</summary>
    private string ModuleOutput(string module, string language)
    {
        var text = new StringBuilder();
        foreach (var book in BibleBooks.Protestant)
        {
            for (int c = 1; c <= 3; c++)
            {
                for (int v = 1; v <= 10; v++) text.Append($"{book.SwordName} {c}:{v}: <w savlm=\"strong:H0001\">{language}</w> {book.Name} {c}:{v}.\n");
            }
        }
        text.Append($"({module})\n");
        string path = Path.Combine(_temp, module + ".txt");
        File.WriteAllText(path, text.ToString());
        return path;
    }

    [Fact]
    public void Preparation_through_a_fake_diatheke_writes_the_whole_directory()
    {
        string fake = FakeDiatheke(ModuleLists +
            $"case \"$2\" in {Web}) cat '{ModuleOutput(Web, "English")}';; {Rv}) cat '{ModuleOutput(Rv, "Español")}';; esac");
        string dir = Path.Combine(_temp, "data", "prepared", "bible-v1");
        var progress = new List<string>();

        var result = BiblePreparation.Prepare(new PrepareOptions { OutputDirectory = dir, Diatheke = fake, Progress = progress.Add });

        Assert.Equal(dir, result.Directory);
        Assert.Equal(66 * 30, result.Alignment.Aligned);
        var data = PreparedData.Open(dir);
        Assert.Equal("Fake English", data.Manifest.Sources[0].Title);
        Assert.Contains("-k 'Genesis 1:1-Revelation 22:21'", data.Manifest.Sources[1].Command);
        Assert.Equal(66 * 30, PreparedData.Splits.Sum(s => data.ReadPairs(s).Count));
        Assert.Contains(data.ReadPairs(CorpusSplit.Train), p => p == new VersePair("1 Samuel 2:3", "Español 1 Samuel 2:3.", "English 1 Samuel 2:3."));
        Assert.Contains(progress, l => l.StartsWith($"read {Web}: 1,980 verses (1,980 with text) in 66 books, 198 chapters", StringComparison.Ordinal));
        Assert.Equal("wrote manifest.json", progress[^2]);
    }

    [Fact]
    public void A_missing_module_names_the_debian_package()
    {
        string fake = FakeDiatheke("if [ \"$2\" = system ]; then echo engWEB2015eb; exit 0; fi");
        var e = Assert.Throws<FloraException>(() =>
            BiblePreparation.CheckRequirements(new SwordBible(Web, fake), [Web, Rv], install: false));
        Assert.StartsWith("missing Debian packages: sword-text-sparv (SWORD modules not installed: spaRV1909eb): install them with: sudo apt-get install -y sword-text-sparv", e.Message);
    }

    [Fact]
    public void A_missing_diatheke_at_a_given_path_is_named()
    {
        string path = Path.Combine(_temp, "no-such-diatheke");
        var e = Assert.Throws<FloraException>(() => BiblePreparation.Prepare(new PrepareOptions { OutputDirectory = Path.Combine(_temp, "out"), Diatheke = path }));
        Assert.StartsWith($"diatheke not found at '{path}'", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_temp, "out")));
    }

    [Theory]
    [InlineData("echo 'Segmentation fault'", "unexpected diatheke output")]
    [InlineData("echo \"($2)\"", "printed no verses")]
    [InlineData("printf 'Genesis 1:1: <note>only a note</note>\\n(%s)\\n' \"$2\"", "no verse with text")]
    [InlineData("printf 'Genesis 1:1: In the beginning.\\n(%s)\\n' \"$2\"", "no text for 65 of the 66 books (Exodus, Leviticus")]
    [InlineData("echo 'cannot open module' >&2; exit 3", "exit code 3: cannot open module")]
    public void Unexpected_or_empty_diatheke_output_is_an_error_and_writes_nothing(string script, string expected)
    {
        string fake = FakeDiatheke(ModuleLists + script);
        string dir = Path.Combine(_temp, "out", "bible-v1");
        var e = Assert.Throws<FloraException>(() => BiblePreparation.Prepare(new PrepareOptions { OutputDirectory = dir, Diatheke = fake }));
        Assert.Contains(expected, e.Message);
        Assert.False(Directory.Exists(Path.Combine(_temp, "out")));
    }

    [Fact]
    public void Cli_refuses_an_existing_directory_without_force()
    {
        string dir = Path.Combine(_temp, "exists");
        Directory.CreateDirectory(dir);
        var (code, _, error) = RunCli("data", "prepare", "--out", dir);
        Assert.Equal(FloraCli.UserError, code);
        Assert.Contains($"error: {dir} already exists: use --force to replace it", error);
    }
}
