using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using Flora.Experiments.Bible;
using Flora.Cli;
using Flora.Data.Corpora;
using Spectre.Console;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Data;

/// <summary>
/// The SWORD reader (parser on hand-written diatheke output, process errors through fake executables, the real
/// diatheke), the embedded corpus (checksum, layout, split, byte-for-byte reproduction) and text-file corpora.
/// </summary>
public sealed class CorpusTests : IDisposable
{
    private const string Web = SwordBible.WorldEnglishBible;
    private const string InstallDiatheke =
        "diatheke is not installed: install it with 'sudo apt-get install diatheke sword-text-web sword-text-sparv' (./test.sh does this as root)";

    private readonly string _temp = Directory.CreateTempSubdirectory("flora-corpus-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static IReadOnlyList<Verse> Parse(string body, string module = Web) =>
        SwordBible.Parse(body + $"({module})\n", module);

    private static string Text(string markup) => Assert.Single(Parse($"Genesis 1:1: {markup}\n")).Text;

    // ---- Parser: references, trailer, verse boundaries ----

    [Fact]
    public void Parse_reads_references_and_strips_word_markup()
    {
        var verses = Parse(
            "Genesis 1:1: <w savlm=\"strong:H0430\">In</w> <w savlm=\"strong:H0853\">the</w> <w savlm=\"strong:H7225\">beginning</w>.\n" +
            "Genesis 1:2: <w savlm=\"strong:H0776\">The</w> <w>earth</w> was formless.\n");

        Assert.Equal(new[] { new Verse("Genesis", 1, 1, "In the beginning."), new Verse("Genesis", 1, 2, "The earth was formless.") }, verses);
        Assert.Equal("Genesis 1:2", verses[1].Reference);
    }

    [Fact]
    public void Parse_maps_roman_numerals_and_revelation_to_canonical_names()
    {
        var verses = Parse("I Samuel 3:4: Samuel.\nII Kings 2:1: Elijah.\nIII John 1:2: Beloved.\nRevelation of John 22:20: Come.\nSong of Solomon 1:1: Song.\nTobit 1:1: Tobit.\n");

        Assert.Equal(new[] { "1 Samuel", "2 Kings", "3 John", "Revelation", "Song of Solomon", "Tobit" }, verses.Select(v => v.Book));
        Assert.Equal((3, 4), (verses[0].Chapter, verses[0].Number));
    }

    [Fact]
    public void Parse_drops_headings_before_the_reference_including_the_stale_psalm_title()
    {
        // diatheke prints a psalm's title (with a footnote inside) before every verse of the psalm when headings are off.
        const string title = "<title canonical=\"true\" type=\"psalm\">A Psalm by David.<note placement=\"foot\" swordFootnote=\"1\"></note></title> <lg sID=\"gen7860\"/> <l level=\"1\" sID=\"gen7861\"/>";
        var verses = Parse(
            $"{title}Psalms 3:1: Yahweh, how my adversaries have increased!<l eID=\"gen7861\" level=\"1\"/> <l level=\"2\" sID=\"gen7862\"/>Many are those who rise up against me.<l eID=\"gen7862\" level=\"2\"/>\n" +
            $"{title}Psalms 3:2: Many there are who say of my soul,<l eID=\"a\" level=\"1\"/><l level=\"2\" sID=\"b\"/>“There is no help for him in God.”<l eID=\"b\" level=\"2\"/> <l sID=\"c\" type=\"selah\"/><w>Selah</w>.<l eID=\"c\" type=\"selah\"/>\n");

        Assert.Equal("Yahweh, how my adversaries have increased! Many are those who rise up against me.", verses[0].Text);
        Assert.Equal("Many there are who say of my soul, “There is no help for him in God.” Selah.", verses[1].Text);
        Assert.All(verses, v => Assert.DoesNotContain("Psalm by David", v.Text));
    }

    [Fact]
    public void Parse_accepts_indented_references_after_line_group_starts()
    {
        var verses = Parse(
            "Matthew 5:2: He taught them, saying, <div eID=\"gen30353\" type=\"x-p\"/>\n" +
            "<lg sID=\"gen30354\"/> <l level=\"1\" sID=\"gen30355\"/> Matthew 5:3:  <q marker=\"\">“<w>Blessed</w> are the poor in spirit,</q> <l eID=\"gen30355\" level=\"1\"/>\n" +
            "  Matthew 5:4: Blessed are those who mourn,\n");

        Assert.Equal(new[] { "He taught them, saying,", "“Blessed are the poor in spirit,", "Blessed are those who mourn," }, verses.Select(v => v.Text));
        Assert.Equal(new[] { 2, 3, 4 }, verses.Select(v => v.Number));
    }

    [Fact]
    public void Parse_joins_continuation_lines_and_normalises_white_space()
    {
        var verses = Parse("Psalms 23:1: Yahweh is my shepherd;\r\n\tI shall   lack nothing.  \r\n\r\nPsalms 23:2: He makes me lie down.\r\n\r\n");

        Assert.Equal(new[] { "Yahweh is my shepherd; I shall lack nothing.", "He makes me lie down." }, verses.Select(v => v.Text));
    }

    [Fact]
    public void Parse_leaves_out_verses_without_text()
    {
        var verses = Parse("Romans 16:24: The grace of our Lord Jesus Christ be with you all! Amen.\nRomans 16:25:    \nRomans 16:26:\nActs 8:37: <note placement=\"foot\" swordFootnote=\"1\"></note>\n");

        Assert.Equal("Romans 16:24", Assert.Single(verses).Reference);
    }

    [Fact]
    public void Parse_cuts_the_glossary_appended_after_the_end_of_revelation()
    {
        var verse = Assert.Single(Parse(
            "Revelation of John 22:21: <w>The</w> grace of the Lord Jesus Christ be with all the saints. Amen.  <chapter eID=\"Rev.22\"/><div eID=\"gen35836\" type=\"x-p\"/> " +
            "<div canonical=\"true\" eID=\"gen35575\" osisID=\"Rev\" type=\"book\"/> <div sID=\"gen35837\" type=\"glossary\"/> <milestone n=\"Glossary\" type=\"x-usfm-h\"/>  " +
            "<div sID=\"gen35838\" type=\"introduction\"/> The following words used in the World English Bible (WEB) are not very common. <list> <item type=\"x-indent-1\"><seg type=\"keyword\">Abaddon</seg> Abaddon is Hebrew for destruction.</item></list>\n\n\n"));

        Assert.Equal(new Verse("Revelation", 22, 21, "The grace of the Lord Jesus Christ be with all the saints. Amen."), verse);
    }

    [Fact]
    public void Parse_does_not_cut_at_the_start_of_a_book()
    {
        Assert.Equal("In the beginning.", Text("<div canonical=\"true\" osisID=\"Gen\" sID=\"gen1\" type=\"book\"/>In the beginning."));
    }

    [Fact]
    public void Parse_returns_no_verses_when_diatheke_printed_only_the_module_line()
    {
        Assert.Empty(SwordBible.Parse($"({Web})\n", Web));
    }

    // ---- Parser: notes and the spaces the module dropped ----

    [Theory]
    [InlineData("<w>God</w><note placement=\"foot\" swordFootnote=\"1\"></note><w>created</w> the heavens", "God created the heavens")]
    [InlineData("<w>Jude</w>,<note placement=\"foot\" swordFootnote=\"1\"></note><w>a</w> servant", "Jude, a servant")]
    [InlineData("son of <w>man</w>,<note swordFootnote=\"1\" type=\"crossReference\"></note><w>having</w> on his head", "son of man, having on his head")]
    [InlineData("the Alpha and the Omega,<note placement=\"foot\"/>”says the Lord God,<note placement=\"foot\"/>“who is", "the Alpha and the Omega,” says the Lord God, “who is")]
    [InlineData("(the shekel is twenty gerahs<note placement=\"foot\"/>); half a shekel", "(the shekel is twenty gerahs); half a shekel")]
    [InlineData("saying, ‘I am he<note placement=\"foot\"/>,’ and", "saying, ‘I am he,’ and")]
    [InlineData("the waters of Meribah;<note placement=\"foot\"/>because", "the waters of Meribah; because")]
    [InlineData("incomprehensible<note placement=\"foot\"/>?”", "incomprehensible?”")]
    [InlineData("Rabbi’<note placement=\"foot\"/>by men", "Rabbi’ by men")]
    [InlineData("Moses<note placement=\"foot\"/>’s law", "Moses’s law")]
    [InlineData("word<note placement=\"foot\"/> next", "word next")]
    [InlineData("“<note placement=\"foot\"/>Blessed", "“Blessed")]
    [InlineData("<note placement=\"foot\"/>Now when he had risen", "Now when he had risen")]
    [InlineData("the end.<note placement=\"foot\"/>", "the end.")]
    public void Notes_are_removed_and_the_dropped_space_is_restored(string markup, string expected)
    {
        Assert.Equal(expected, Text(markup));
    }

    [Fact]
    public void Note_content_is_removed_with_the_note()
    {
        Assert.Equal("In the beginning, God created.",
            Text("In the beginning, <w>God</w><note placement=\"foot\">1:1 The Hebrew word rendered “God” is “אֱלֹהִ֑ים” (Elohim). <reference>Gen 2:4</reference></note><w>created</w>."));
    }

    // ---- Parser: other markup ----

    [Fact]
    public void Headings_and_speaker_labels_inside_the_text_are_dropped()
    {
        Assert.Equal("his rooms. We will be glad!",
            Text("his rooms.<l eID=\"a\" level=\"2\"/> <lg eID=\"b\"/> <speaker>Friends</speaker> <lg sID=\"c\"/> <title type=\"section\">The Friends</title><l level=\"1\" sID=\"d\"/>We will be glad!"));
    }

    [Fact]
    public void Inline_elements_keep_their_text_without_adding_spaces()
    {
        Assert.Equal("hay allí también bdelio; y el SEÑOR",
            Text("<w>hay allí</w> <transChange type=\"added\">también</transChange> <w>bdelio</w>; y el <divineName>S<hi type=\"small-caps\">EÑOR</hi></divineName>"));
    }

    [Fact]
    public void Line_breaks_and_entities_become_text()
    {
        Assert.Equal("Salt & light: “you” — <yes>", Text("Salt &amp; light:<lb type=\"x-p\"/>“you” —\t&lt;yes&gt;"));
    }

    [Fact]
    public void Curly_quotes_and_dashes_are_kept_as_they_are()
    {
        Assert.Equal("God said, “Let there be light,” and God’s Spirit — ‘yes’.", Text("God said, “Let there be light,” and God’s Spirit — ‘yes’."));
    }

    // ---- Parser: unexpected output ----

    [Fact]
    public void Output_without_the_module_line_is_rejected()
    {
        var e = Assert.Throws<FloraException>(() => SwordBible.Parse("Genesis 1:1: In the beginning.\n", Web, "diatheke -b engWEB2015eb -k Gen"));
        Assert.Contains("'(engWEB2015eb)'", e.Message);
        Assert.Contains("command: diatheke -b engWEB2015eb -k Gen", e.Message);
    }

    [Fact]
    public void Output_of_another_module_is_rejected()
    {
        var e = Assert.Throws<FloraException>(() => SwordBible.Parse("Genesis 1:1: EN el principio.\n(spaRV1909eb)\n", Web));
        Assert.Contains("got '(spaRV1909eb)'", e.Message);
    }

    [Fact]
    public void Empty_output_is_rejected()
    {
        var e = Assert.Throws<FloraException>(() => SwordBible.Parse(" \n\n", Web));
        Assert.Contains("empty", e.Message);
    }

    [Fact]
    public void Text_before_the_first_reference_is_rejected()
    {
        var e = Assert.Throws<FloraException>(() => SwordBible.Parse($"diatheke: something went wrong\nGenesis 1:1: In.\n({Web})\n", Web));
        Assert.Contains("line 1 is not a verse", e.Message);
    }

    // ---- The book list ----

    [Fact]
    public void The_canon_has_66_books_in_order()
    {
        var books = BibleBooks.Protestant;
        Assert.Equal(66, books.Count);
        Assert.Equal(66, books.Select(b => b.Name).Distinct().Count());
        Assert.Equal(Enumerable.Range(0, 66), books.Select(b => b.Index));
        Assert.Equal(39, books.Count(b => !b.IsNewTestament));
        Assert.Equal(("Genesis", "Malachi", "Matthew", "Revelation"), (books[0].Name, books[38].Name, books[39].Name, books[65].Name));
        Assert.Equal(new[] { "Psalms", "Song of Solomon", "Philemon", "Hebrews", "Jude" },
            new[] { books[18].Name, books[21].Name, books[56].Name, books[57].Name, books[64].Name });
        Assert.Equal("I Thessalonians", BibleBooks.Get("1 Thessalonians").SwordName);
        Assert.Equal("3 John", BibleBooks.Find("III John")?.Name);
        Assert.Equal("Revelation", BibleBooks.Find("revelation of john")?.Name);
        Assert.Null(BibleBooks.Find("Tobit"));
        Assert.Contains("not a book", Assert.Throws<FloraException>(() => BibleBooks.Get("Tobit")).Message);
    }

    // ---- The process runner, with fake diatheke scripts ----

    private string FakeDiatheke(string script)
    {
        string path = Path.Combine(_temp, $"fake-diatheke-{Guid.NewGuid():N}");
        File.WriteAllText(path, "#!/bin/sh\n" + script + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    [Fact]
    public void Missing_diatheke_says_how_to_install_it()
    {
        var bible = new SwordBible(Web, Path.Combine(_temp, "no-such-diatheke"));
        var e = Assert.Throws<FloraException>(() => bible.ReadRange("Gen 1:1"));
        Assert.StartsWith("diatheke not found: install it with 'sudo apt-get install diatheke sword-text-web'", e.Message);
    }

    [Theory]
    [InlineData(SwordBible.ReinaValera1909, "install it with 'sudo apt-get install sword-text-sparv'")]
    [InlineData(SwordBible.WorldEnglishBible, "install it with 'sudo apt-get install sword-text-web'")]
    [InlineData("engKJV2006", "apt-cache search sword-text")]
    public void Missing_module_names_the_package_that_provides_it(string module, string expected)
    {
        // diatheke prints nothing at all for a module it does not have, and lists its modules for "-b system".
        string fake = FakeDiatheke("if [ \"$2\" = system ]; then echo someOtherModule; fi");
        var e = Assert.Throws<FloraException>(() => new SwordBible(module, fake).ReadRange("Gen 1:1"));
        Assert.Contains($"SWORD module '{module}' is not installed", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_key_without_verses_is_reported_with_the_command()
    {
        string fake = FakeDiatheke($"echo '({Web})'");
        var e = Assert.Throws<FloraException>(() => new SwordBible(Web, fake).ReadRange("Nonsense 1:1"));
        Assert.Contains("no verses for 'Nonsense 1:1'", e.Message);
        Assert.Contains("-f internal -o fs -l en -k 'Nonsense 1:1'", e.Message);
    }

    [Fact]
    public void Unexpected_output_is_reported_with_the_command()
    {
        string fake = FakeDiatheke("echo 'Segmentation fault'");
        var e = Assert.Throws<FloraException>(() => new SwordBible(Web, fake).ReadRange("Gen 1:1"));
        Assert.Contains("unexpected diatheke output", e.Message);
        Assert.Contains($"-b {Web} -f internal", e.Message);
    }

    [Fact]
    public void A_failing_diatheke_is_reported_with_its_exit_code_and_message()
    {
        string fake = FakeDiatheke("echo 'cannot open module' >&2; exit 3");
        var e = Assert.Throws<FloraException>(() => new SwordBible(Web, fake).ReadRange("Gen 1:1"));
        Assert.Contains("exit code 3: cannot open module", e.Message);
    }

    [Fact]
    public void The_runner_passes_the_arguments_and_parses_the_output()
    {
        string fake = FakeDiatheke($"printf '%s\\n' \"$*\" > '{_temp}/args'; printf 'Jude 1:1: <w>Jude</w>,<note/><w>a</w> servant\\n({Web})\\n'");
        var verses = new SwordBible(Web, fake).ReadBook("Jude");
        Assert.Equal(new Verse("Jude", 1, 1, "Jude, a servant"), Assert.Single(verses));
        Assert.Equal($"-b {Web} -f internal -o fs -l en -k Jude", File.ReadAllText(Path.Combine(_temp, "args")).Trim());
    }

    [Fact]
    public void Reading_a_book_rejects_verses_of_another_book()
    {
        string fake = FakeDiatheke($"printf 'Genesis 1:1: In.\\n({Web})\\n'");
        var e = Assert.Throws<FloraException>(() => new SwordBible(Web, fake).ReadBook("Exodus"));
        Assert.Contains("printed Genesis 1:1 when asked for the book Exodus", e.Message);
    }

    // ---- The real diatheke ----

    private static void RequireDiatheke()
    {
        bool found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, SwordBible.DefaultExecutable)));
        Assert.True(found, InstallDiatheke);
    }

    [Fact]
    public void Real_diatheke_reads_a_small_range()
    {
        RequireDiatheke();
        var verses = new SwordBible(Web).ReadRange("Gen 1:1-Gen 1:5");

        Assert.Equal(Enumerable.Range(1, 5), verses.Select(v => v.Number));
        Assert.All(verses, v => Assert.Equal(("Genesis", 1), (v.Book, v.Chapter)));
        Assert.Equal("In the beginning, God created the heavens and the earth.", verses[0].Text);   // "Godcreated" without the notes
        Assert.Equal("God said, “Let there be light,” and there was light.", verses[2].Text);
        Assert.Equal("God called the light “day”, and the darkness he called “night”. There was evening and there was morning, the first day.", verses[4].Text);
    }

    [Fact]
    public void Real_diatheke_psalm_titles_notes_and_book_names()
    {
        RequireDiatheke();
        var bible = new SwordBible(Web);

        var psalm = bible.ReadRange("Psalms 3:1-3:2");
        Assert.Equal("Yahweh, how my adversaries have increased! Many are those who rise up against me.", psalm[0].Text);
        Assert.Equal("Many there are who say of my soul, “There is no help for him in God.” Selah.", psalm[1].Text);
        Assert.Equal("Jude, a servant of Jesus Christ, and brother of James, to those who are called, sanctified by God the Father, and kept for Jesus Christ:",
            Assert.Single(bible.ReadRange("Jude 1:1")).Text);
        var last = Assert.Single(bible.ReadRange("Revelation 22:21"));
        Assert.Equal(new Verse("Revelation", 22, 21, "The grace of the Lord Jesus Christ be with all the saints. Amen."), last);
        Assert.Equal("1 Samuel", Assert.Single(bible.ReadRange("1 Samuel 1:1")).Book);
    }

    [Fact]
    public void Real_diatheke_reads_the_spanish_module()
    {
        RequireDiatheke();
        var verses = new SwordBible(SwordBible.ReinaValera1909).ReadRange("Gen 1:1-Gen 1:2");

        Assert.Equal(new Verse("Genesis", 1, 1, "EN el principio crió Dios los cielos y la tierra."), verses[0]);
        Assert.StartsWith("Y la tierra estaba desordenada y vacía", verses[1].Text);
    }

    [Fact]
    public void Real_diatheke_reports_a_key_without_verses()
    {
        RequireDiatheke();
        var e = Assert.Throws<FloraException>(() => new SwordBible(Web).ReadRange("Nonsense 1:1"));
        Assert.Contains("no verses", e.Message);
    }

    [Fact]
    public void Export_corpus_reproduces_the_committed_file_byte_for_byte()
    {
        RequireDiatheke();
        string output = Path.Combine(_temp, "sub", EmbeddedCorpus.FileName);
        var (code, stdout, error) = RunCli("data", "export-corpus", "--out", output);

        Assert.True(code == 0, error);
        Assert.Equal(File.ReadAllBytes(CommittedFile), File.ReadAllBytes(output));
        Assert.Contains(ReadmeSha256(), stdout);
        Assert.Contains("37 books, 710 chapters, 18246 verses", stdout);
    }

    [Fact]
    public void Export_corpus_requires_an_output_path()
    {
        var (code, _, error) = RunCli("data", "export-corpus");
        Assert.Equal(FloraCli.UsageError, code);
        Assert.Contains("--out", error);
    }

    // ---- The embedded corpus ----

    private static readonly string RepositoryRoot = TestUtil.RepositoryRoot;
    private static readonly string CorpusDirectory = Path.Combine(RepositoryRoot, "data", "corpus");
    private static readonly string CommittedFile = Path.Combine(CorpusDirectory, EmbeddedCorpus.FileName);
    private static readonly string Readme = File.ReadAllText(Path.Combine(CorpusDirectory, "README.md"));


    private static string ReadmeSha256()
    {
        var m = Regex.Match(Readme, @"SHA-256 of the uncompressed text \| `([0-9a-f]{64})`");
        Assert.True(m.Success, "data/corpus/README.md has no line '| SHA-256 of the uncompressed text | `...` |'");
        return m.Groups[1].Value;
    }

    /// <summary>The chapters of the embedded text, each as its verse lines.</summary>
    private static List<string[]> Chapters() =>
        EmbeddedCorpus.ReadText().Split("\n\n").Select(c => c.TrimEnd('\n').Split('\n')).ToList();

    [Fact]
    public void Embedded_text_matches_the_sha256_in_the_readme()
    {
        Assert.Equal(ReadmeSha256(), EmbeddedCorpusBuilder.Sha256(EmbeddedCorpus.ReadText()));
    }

    [Fact]
    public void Embedded_resource_is_the_committed_file()
    {
        Assert.Equal(File.ReadAllBytes(CommittedFile), EmbeddedCorpus.ReadCompressed());
    }

    [Fact]
    public void Compressing_the_text_again_gives_the_committed_bytes()
    {
        byte[] committed = EmbeddedCorpus.ReadCompressed();
        Assert.Equal(committed, EmbeddedCorpusBuilder.Compress(EmbeddedCorpus.ReadText()));
        Assert.InRange(committed.Length, 400_000, 1_500_000);
    }

    [Fact]
    public void Embedded_sizes_are_as_documented()
    {
        string text = EmbeddedCorpus.ReadText();
        int bytes = Encoding.UTF8.GetByteCount(text);
        var chapters = Chapters();
        var corpus = EmbeddedCorpus.Load();

        Assert.InRange(bytes, 1_500_000, 3_000_000);
        Assert.Equal((710, 18246), (chapters.Count, chapters.Sum(c => c.Length)));
        Assert.Equal((710, 18246), (corpus.Units, corpus.Lines));
        Assert.Contains($"| text (UTF-8, uncompressed) | {bytes:N0} bytes, {text.Count(c => c == '\n'):N0} lines |", Readme);
        Assert.Contains($"| compressed (this file) | {EmbeddedCorpus.ReadCompressed().Length:N0} bytes |", Readme);
        Assert.Contains($"| chapters | {chapters.Count} (", Readme);
        Assert.Contains($"| verses | {corpus.Lines:N0} (", Readme);
        foreach (var (name, size) in new[] { ("train", corpus.TrainSize), ("validation", corpus.ValidationSize), ("test", corpus.TestSize) })
        {
            Assert.Contains($"| {name} | {size.Units} | {size.Lines:N0} | {size.Characters:N0} |", Readme);
        }
        Assert.Equal((639, 35, 36), (corpus.TrainSize.Units, corpus.ValidationSize.Units, corpus.TestSize.Units));
    }

    [Fact]
    public void Embedded_books_are_in_canonical_order_and_listed_in_the_readme()
    {
        var books = EmbeddedCorpusBuilder.Books.Select(BibleBooks.Get).ToList();
        Assert.Equal(37, books.Count);
        Assert.Equal(books.OrderBy(b => b.Index), books);
        Assert.Equal(27, books.Count(b => b.IsNewTestament));
        foreach (var book in books) Assert.Matches($@"\b{Regex.Escape(book.Name)} \(\d+\)", Readme);
    }

    [Fact]
    public void Embedded_text_is_one_clean_verse_per_line()
    {
        string text = EmbeddedCorpus.ReadText();
        var chapters = Chapters();

        Assert.DoesNotContain('\r', text);
        Assert.EndsWith(".\n", text);
        Assert.DoesNotContain("\n\n\n", text);
        Assert.All(chapters.SelectMany(c => c), line =>
        {
            Assert.True(line.Length > 0 && line == line.Trim() && !line.Contains("  "), $"bad line: '{line}'");
            Assert.True(line.IndexOfAny(['<', '>', '[', ']', '&', '\t']) < 0, $"markup left in: '{line}'");
        });
        Assert.Equal("In the beginning, God created the heavens and the earth.", chapters[0][0]);
        Assert.Equal("The grace of the Lord Jesus Christ be with all the saints. Amen.", chapters[^1][^1]);
        Assert.DoesNotContain("Glossary", text);
        Assert.DoesNotContain("A Psalm by David", text);
        Assert.Contains("Jude, a servant of Jesus Christ, and brother of James", text);
        Assert.Contains("“I am the Alpha and the Omega,” says the Lord God, “who is", text);
        Assert.Equal(31, chapters[0].Length);                   // Genesis 1 has 31 verses
        Assert.Equal(6, chapters[50 + 40 + 4 + 31 + 24 + 42 + 22].Length);   // Psalm 23
    }

    [Fact]
    public void Embedded_split_is_by_chapter_disjoint_and_deterministic()
    {
        var chapters = Chapters();
        var corpus = EmbeddedCorpus.Load();

        string Join(Func<int, bool> take) => string.Join("\n", chapters.Where((_, i) => take(i)).Select(c => string.Join("\n", c) + "\n"));
        Assert.Equal(Join(i => i % 20 == 19), corpus.Validation);
        Assert.Equal(Join(i => i % 20 == 9), corpus.Test);
        Assert.Equal(Join(i => i % 20 != 19 && i % 20 != 9), corpus.Train);

        var again = TextCorpus.FromText(EmbeddedCorpus.ReadText(), "again");
        Assert.Equal((corpus.Train, corpus.Validation, corpus.Test), (again.Train, again.Validation, again.Test));
        Assert.Equal(corpus.TrainSize.Characters, corpus.Train.Length);
        Assert.Equal(EmbeddedCorpus.ReadText().Length, corpus.Train.Length + corpus.Validation.Length + corpus.Test.Length + 2);
        Assert.Equal((710, 18246), (corpus.TrainSize.Units + corpus.ValidationSize.Units + corpus.TestSize.Units, corpus.TrainSize.Lines + corpus.ValidationSize.Lines + corpus.TestSize.Lines));
        Assert.Equal(EmbeddedCorpus.SourceName, corpus.Source);
        Assert.Same(corpus, EmbeddedCorpus.Load());
    }

    [Fact]
    public void Layout_separates_chapters_and_books_with_one_blank_line()
    {
        string text = EmbeddedCorpusBuilder.Layout([
            new Verse("Jude", 1, 24, "a"), new Verse("Jude", 1, 25, "b"),
            new Verse("Revelation", 1, 1, "c"), new Verse("Revelation", 2, 1, "d"),
        ]);
        Assert.Equal("a\nb\n\nc\n\nd\n", text);
        Assert.Throws<ArgumentException>(() => EmbeddedCorpusBuilder.Layout([]));
        Assert.Throws<ArgumentException>(() => EmbeddedCorpusBuilder.Layout([new Verse("Jude", 1, 1, "two\nlines")]));
    }

    // ---- Deterministic gzip ----

    [Fact]
    public void Gzip_has_a_fixed_header_and_reads_back_with_the_standard_decoder()
    {
        byte[] data = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("In the beginning, God created the heavens and the earth.\n", 100)));
        byte[] gz = DeterministicGzip.Compress(data);

        Assert.Equal(new byte[] { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff }, gz[..10]);
        Assert.Equal(gz, DeterministicGzip.Compress(data));
        Assert.Equal(BitConverter.GetBytes((uint)data.Length), gz[^4..]);
        using var reader = new GZipStream(new MemoryStream(gz), CompressionMode.Decompress);
        using var back = new MemoryStream();
        reader.CopyTo(back);
        Assert.Equal(data, back.ToArray());
        Assert.True(gz.Length < data.Length / 10);
    }

    [Fact]
    public void Crc32_matches_the_standard_check_value()
    {
        Assert.Equal(0xCBF43926u, DeterministicGzip.Crc32("123456789"u8));
        Assert.Equal(0u, DeterministicGzip.Crc32([]));
    }

    // ---- Text files ----

    private string WriteFile(string name, byte[] bytes)
    {
        string path = Path.Combine(_temp, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string WriteFile(string name, string text) => WriteFile(name, Encoding.UTF8.GetBytes(text));

    [Fact]
    public void File_split_by_paragraphs()
    {
        string text = string.Join("\n\n", Enumerable.Range(0, 40).Select(i => $"paragraph {i} line 1\nparagraph {i} line 2"));
        var corpus = TextCorpus.FromFile(WriteFile("paragraphs.txt", text));

        Assert.Equal(CorpusUnit.Paragraph, corpus.Unit);
        Assert.Equal("paragraph 19 line 1\nparagraph 19 line 2\n\nparagraph 39 line 1\nparagraph 39 line 2\n", corpus.Validation);
        Assert.Equal("paragraph 9 line 1\nparagraph 9 line 2\n\nparagraph 29 line 1\nparagraph 29 line 2\n", corpus.Test);
        Assert.StartsWith("paragraph 0 line 1\nparagraph 0 line 2\n\nparagraph 1 line 1\n", corpus.Train);
        Assert.Equal(new SplitSize(36, 72, corpus.Train.Length), corpus.TrainSize);
        Assert.Equal(new SplitSize(2, 4, corpus.Validation.Length), corpus.Size(CorpusSplit.Validation));
        Assert.Equal((40, 80), (corpus.Units, corpus.Lines));
    }

    [Fact]
    public void File_with_few_paragraphs_is_split_by_lines_and_normalised()
    {
        // A byte-order mark, CRLF line endings and trailing spaces; one paragraph break, so lines are the units.
        string text = "\uFEFF" + string.Join("\r\n", Enumerable.Range(0, 25).Select(i => $"line {i}  ")).Replace("line 12  ", "line 12\r\n");
        var corpus = TextCorpus.FromFile(WriteFile("lines.txt", text));

        Assert.Equal(CorpusUnit.Line, corpus.Unit);
        Assert.Equal("line 19\n", corpus.Validation);
        Assert.Equal("line 9\n", corpus.Test);
        Assert.StartsWith("line 0\nline 1\n", corpus.Train);
        Assert.Equal(23, corpus.TrainSize.Lines);
        Assert.DoesNotContain('\r', corpus.Train);
        Assert.DoesNotContain('\uFEFF', corpus.Train);
        Assert.Equal(Path.Combine(_temp, "lines.txt"), corpus.Source);
    }

    [Theory]
    [InlineData(0, CorpusSplit.Train)]
    [InlineData(9, CorpusSplit.Test)]
    [InlineData(19, CorpusSplit.Validation)]
    [InlineData(20, CorpusSplit.Train)]
    [InlineData(29, CorpusSplit.Test)]
    [InlineData(39, CorpusSplit.Validation)]
    public void Split_of_a_unit_depends_only_on_its_index(int index, CorpusSplit expected)
    {
        Assert.Equal(expected, TextCorpus.SplitOf(index));
    }

    [Fact]
    public void Missing_file_is_a_data_format_error_naming_it()
    {
        string path = Path.Combine(_temp, "missing.txt");
        var e = Assert.Throws<DataFormatException>(() => TextCorpus.FromFile(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("not found", e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" \n\r\n\t\n")]
    public void Empty_file_is_a_data_format_error_naming_it(string content)
    {
        string path = WriteFile("empty.txt", content);
        var e = Assert.Throws<DataFormatException>(() => TextCorpus.FromFile(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("empty", e.Message);
        Assert.StartsWith(path + ": ", e.Message);
    }

    [Fact]
    public void Invalid_utf8_is_a_data_format_error_with_the_offset()
    {
        byte[] bytes = [.. Encoding.UTF8.GetBytes("valid text “quoted”\n"), 0xC3, 0x28, .. "more\n"u8];
        string path = WriteFile("latin1.txt", bytes);
        var e = Assert.Throws<DataFormatException>(() => TextCorpus.FromFile(path));
        Assert.Equal(path, e.Path);
        Assert.Contains($"not valid UTF-8 (first bad byte at offset {Encoding.UTF8.GetByteCount("valid text “quoted”\n")})", e.Message);
    }

    [Fact]
    public void Too_short_a_text_is_a_data_format_error()
    {
        string path = WriteFile("short.txt", "one\ntwo\n\nthree\n");
        var e = Assert.Throws<DataFormatException>(() => TextCorpus.FromFile(path));
        Assert.Contains("too little text to split: 2 paragraphs and 3 non-blank lines", e.Message);
    }
}
