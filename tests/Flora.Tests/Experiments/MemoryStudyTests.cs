using System.Text.Json;
using Flora.Cli;
using Flora.Experiments;
using Flora.Nn;
using Flora.Tensors;
using Spectre.Console;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Experiments;

/// <summary>Parameter tables, the memory study (measured against formula and against hand-computed bytes) and <c>flora memory</c>.</summary>
public class MemoryStudyTests : IDisposable
{
    private const long F = 4;                                         // bytes per float32
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-memory-").FullName;

    // ---------------------------------------------------------------- parameter tables

    [Fact]
    public void Gpt2_124M_has_the_hugging_face_layout_and_124_439_808_parameters()
    {
        var t = ParameterTable.Gpt2_124M();
        Assert.Equal("gpt2-124m", t.Name);
        Assert.Equal(124_439_808L, t.ParameterCount);
        Assert.Equal(124_439_808L * 4, t.Bytes);
        Assert.Equal(2 + 12 * 12 + 2, t.Entries.Count);

        var expected = new List<(string, int[])> { ("wte.weight", [50257, 768]), ("wpe.weight", [1024, 768]) };
        for (int i = 0; i < 12; i++)
        {
            expected.AddRange(new (string, int[])[]
            {
                ($"h.{i}.ln_1.weight", [768]), ($"h.{i}.ln_1.bias", [768]),
                ($"h.{i}.attn.c_attn.weight", [768, 2304]), ($"h.{i}.attn.c_attn.bias", [2304]),
                ($"h.{i}.attn.c_proj.weight", [768, 768]), ($"h.{i}.attn.c_proj.bias", [768]),
                ($"h.{i}.ln_2.weight", [768]), ($"h.{i}.ln_2.bias", [768]),
                ($"h.{i}.mlp.c_fc.weight", [768, 3072]), ($"h.{i}.mlp.c_fc.bias", [3072]),
                ($"h.{i}.mlp.c_proj.weight", [3072, 768]), ($"h.{i}.mlp.c_proj.bias", [768]),
            });
        }
        expected.Add(("ln_f.weight", [768]));
        expected.Add(("ln_f.bias", [768]));
        Assert.Equal(expected.Select(e => e.Item1), t.Entries.Select(e => e.Name));
        Assert.Equal(expected.Select(e => new Shape(e.Item2)), t.Entries.Select(e => e.Shape));

        // Conv1D orientation (in, out): c_fc takes 768 features to 3072.
        var fc = t["h.3.mlp.c_fc.weight"];
        Assert.Equal((768, 3072), (fc.InFeatures, fc.OutFeatures));
        // 49 of 50 matrices are FLORA-eligible at r = 32: all but wte (aspect ratio 65 > 4).
        Assert.Equal(49, t.EligibleMatrices(32));
    }

    [Fact]
    public void Gpt2_350M_has_354_823_168_parameters()
    {
        var t = ParameterTable.Gpt2_350M();
        Assert.Equal(354_823_168L, t.ParameterCount);
        Assert.Equal(2 + 24 * 12 + 2, t.Entries.Count);
        Assert.Equal(new Shape(1024, 3072), t["h.23.attn.c_attn.weight"].Shape);
        Assert.Equal(new Shape(4096, 1024), t["h.0.mlp.c_proj.weight"].Shape);
    }

    [Fact]
    public void Pilot_table_is_the_pilot_network()
    {
        var t = ParameterTable.Pilot();
        Assert.Equal(768L * 784 + 768 + 768 * 768 + 10 * 768 + 10, t.ParameterCount);
        Assert.Equal(1_200_394L, t.ParameterCount);
        Assert.Equal(2, t.EligibleMatrices(32));                          // fc1 and fc2; fc3 (10, 768) is too small

        using var backend = TestUtil.Cpu();
        using var model = PilotStudy.BuildModel(backend, PilotVariant.Sgd, 28 * 28, new PilotOptions(), out _);
        Assert.Equal(model.Parameters().Select(p => (p.Name, p.Shape)), t.Entries.Select(e => (e.Name, e.Shape)));
    }

    [Fact]
    public void Lora_adapters_have_the_names_and_shapes_of_LoraLinear()
    {
        using var backend = TestUtil.Cpu();
        using var model = PilotStudy.BuildModel(backend, PilotVariant.Lora, 28 * 28, new PilotOptions { Rank = 32 }, out var trainable);
        var adapters = ParameterTable.Pilot().LoraAdapters(32);
        Assert.Equal(["fc1.lora_A", "fc1.lora_B", "fc2.lora_A", "fc2.lora_B"], adapters.Entries.Select(e => e.Name));
        Assert.Equal(trainable.Select(p => (p.Name, p.Shape)), adapters.Entries.Where(e => e.Name.StartsWith("fc2")).Select(e => (e.Name, e.Shape)));

        var gpt = ParameterTable.Gpt2_124M().LoraAdapters(32);
        Assert.Equal(new Shape(32, 768), gpt["h.0.mlp.c_fc.lora_A"].Shape);     // A (r, in)
        Assert.Equal(new Shape(3072, 32), gpt["h.0.mlp.c_fc.lora_B"].Shape);    // B (out, r)
        Assert.Equal(new Shape(32, 3072), gpt["h.0.mlp.c_proj.lora_A"].Shape);
        Assert.Equal(2 * 49, gpt.Entries.Count);
    }

    [Fact]
    public void Allocate_creates_tagged_zero_parameters()
    {
        using var backend = TestUtil.Cpu();
        var t = ParameterTable.Pilot();
        var ps = t.Allocate(backend);
        try
        {
            Assert.Equal(t.Bytes, backend.Ledger.Current(MemoryTag.Parameters));
            Assert.All(ps, p => Assert.True(p.RequiresGrad));
            Assert.All(TestUtil.ToArray(ps[2].Value), v => Assert.Equal(0f, v));
        }
        finally
        {
            foreach (var p in ps) p.Dispose();
        }
        Assert.Equal(0, backend.Ledger.CurrentTotal);
    }

    [Theory]
    [InlineData("pilot", 1_200_394L)]
    [InlineData("gpt2-124m", 124_439_808L)]
    [InlineData("GPT2-350M", 354_823_168L)]
    public void Parse_knows_the_presets(string name, long parameters) => Assert.Equal(parameters, ParameterTable.Parse(name).ParameterCount);

    [Fact]
    public void Parse_rejects_an_unknown_model_naming_the_presets()
    {
        var e = Assert.Throws<ArgumentException>(() => ParameterTable.Parse("gpt3"));
        Assert.Contains("'gpt3'", e.Message);
        Assert.Contains("gpt2-124m", e.Message);
    }

    // ---------------------------------------------------------------- measured against formula

    [Theory]
    [InlineData(32, true)]
    [InlineData(8, false)]                                          // the unfactored (linear-memory) Adafactor too
    [InlineData(1000, true)]                                        // rank above every matrix: nothing eligible
    public void Pilot_measured_bytes_equal_the_formula_for_every_method(int rank, bool factored)
    {
        var result = MemoryStudy.Run(ParameterTable.Pilot(), new MemoryStudyOptions { Rank = rank, AccumulationSteps = 4, Factored = factored });
        Assert.Equal(2 * 2 * 4, result.Rows.Count);
        var na = Assert.Single(result.Rows, r => !r.Available);
        Assert.Equal((MemorySetting.Momentum, MemoryBase.AdamW, MemoryMethod.None), (na.Setting, na.Base, na.Method));
        foreach (var row in result.Rows.Where(r => r.Available))
        {
            Assert.True(row.State!.Match, $"{row.Setting} {row.Base} {row.Label}: state {row.State}");
            Assert.True(row.Adapters!.Match, $"{row.Setting} {row.Base} {row.Label}: adapters {row.Adapters}");
            if (row.Setting == MemorySetting.Accumulation)
                Assert.True(row.Accumulator!.Match, $"{row.Base} {row.Label}: accumulator {row.Accumulator}");
            else
                Assert.Null(row.Accumulator);
            Assert.True(row.Match);
        }
        Assert.True(result.AllMatch);
        if (rank == 1000)
        {
            // Nothing is eligible: FLORA keeps what Naive keeps, LoRA has no adapter and trains nothing.
            foreach (var setting in Enum.GetValues<MemorySetting>())
                foreach (var b in Enum.GetValues<MemoryBase>())
                {
                    var rows = result.Rows.Where(r => r.Setting == setting && r.Base == b).ToDictionary(r => r.Method);
                    Assert.Equal(rows[MemoryMethod.Naive].Primary!.Measured, rows[MemoryMethod.Flora].Primary!.Measured);
                    Assert.Equal(0, rows[MemoryMethod.Lora].Primary!.Measured);
                    Assert.Equal(0, rows[MemoryMethod.Lora].TrainableParameters);
                }
        }
    }

    [Fact]
    public void One_768_by_3072_matrix_at_rank_32_matches_hand_computed_bytes()
    {
        const long n = 768, m = 3072, r = 32;
        var table = new ParameterTable("one", [new ParameterSpec("mlp.c_fc.weight", new Shape(768, 3072), WeightLayout.InOut)]);
        var result = MemoryStudy.Run(table, new MemoryStudyOptions { Rank = 32, AccumulationSteps = 16 });
        MemoryRow Row(MemorySetting s, MemoryBase b, MemoryMethod k) => result.Rows.Single(x => x.Setting == s && x.Base == b && x.Method == k);
        void Expect(long floats, MemoryFigure? figure)
        {
            Assert.NotNull(figure);
            Assert.Equal(floats * F, figure!.Measured);
            Assert.Equal(floats * F, figure.Formula);
        }

        const MemorySetting mom = MemorySetting.Momentum, acc = MemorySetting.Accumulation;
        const MemoryBase ada = MemoryBase.Adafactor, adam = MemoryBase.AdamW;
        long factored = n + m, full = n * m, compressed = r * m, adapters = r * n + m * r;

        // Momentum setting, Adafactor: factored second moment (n + m) plus the first moment.
        Expect(factored, Row(mom, ada, MemoryMethod.None).State);
        Expect(full + factored, Row(mom, ada, MemoryMethod.Naive).State);
        Expect(compressed + factored, Row(mom, ada, MemoryMethod.Flora).State);
        // LoRA: A (32, 768) and B (3072, 32) trained; momentum r n + m r, factored (32 + 768) + (3072 + 32).
        var lora = Row(mom, ada, MemoryMethod.Lora);
        Expect(adapters, lora.Adapters);
        Expect(adapters + (r + n) + (m + r), lora.State);
        Assert.Equal(adapters, lora.TrainableParameters);

        // Momentum setting, AdamW: v is always full; m full, compressed or over the adapters.
        Assert.False(Row(mom, adam, MemoryMethod.None).Available);
        Expect(2 * full, Row(mom, adam, MemoryMethod.Naive).State);
        Expect(compressed + full, Row(mom, adam, MemoryMethod.Flora).State);
        Expect(2 * adapters, Row(mom, adam, MemoryMethod.Lora).State);

        // Accumulation setting: the buffers; Adafactor has no momentum, so its state is n + m.
        foreach (var b in new[] { ada, adam })
        {
            Expect(0, Row(acc, b, MemoryMethod.None).Accumulator);
            Expect(full, Row(acc, b, MemoryMethod.Naive).Accumulator);
            Expect(compressed, Row(acc, b, MemoryMethod.Flora).Accumulator);
            Expect(adapters, Row(acc, b, MemoryMethod.Lora).Accumulator);
            Expect(adapters, Row(acc, b, MemoryMethod.Lora).Adapters);
        }
        Expect(factored, Row(acc, ada, MemoryMethod.Flora).State);
        Expect(2 * full, Row(acc, adam, MemoryMethod.Flora).State);
        Expect((r + n) + (m + r), Row(acc, ada, MemoryMethod.Lora).State);

        Assert.Equal((double)compressed / full, Row(acc, ada, MemoryMethod.Flora).RatioToNaive!.Value, 12);
        Assert.Equal((double)(compressed + factored) / (full + factored), Row(mom, ada, MemoryMethod.Flora).RatioToNaive!.Value, 12);
    }

    [Fact]
    public void Options_reject_non_positive_rank_and_tau()
    {
        Assert.Contains("rank", Assert.Throws<ArgumentException>(() => MemoryStudy.Run(ParameterTable.Pilot(), new MemoryStudyOptions { Rank = 0 })).Message);
        Assert.Contains("tau", Assert.Throws<ArgumentException>(() => MemoryStudy.Run(ParameterTable.Pilot(), new MemoryStudyOptions { AccumulationSteps = -1 })).Message);
    }

    // ---------------------------------------------------------------- flora memory

    [Fact]
    public void Memory_json_is_only_json_and_parses()
    {
        var (code, stdout, error) = RunCli("memory", "--model", "pilot", "--json");
        Assert.True(code == 0, error);
        Assert.Equal("", error);
        using var doc = JsonDocument.Parse(stdout);                   // the whole of stdout: nothing else was printed
        var root = doc.RootElement;
        Assert.Equal("pilot", root.GetProperty("model").GetString());
        Assert.Equal(1_200_394L, root.GetProperty("parameters").GetInt64());
        Assert.Equal(32, root.GetProperty("rank").GetInt32());
        Assert.Equal(16, root.GetProperty("accumulationSteps").GetInt32());
        Assert.True(root.GetProperty("allMatch").GetBoolean());
        var rows = root.GetProperty("rows").EnumerateArray().ToArray();
        Assert.Equal(16, rows.Length);
        var flora = rows.Single(r => r.GetProperty("setting").GetString() == "momentum"
            && r.GetProperty("base").GetString() == "adafactor" && r.GetProperty("method").GetString() == "flora");
        Assert.Equal("Flora(32)", flora.GetProperty("label").GetString());
        var state = flora.GetProperty("state");
        Assert.Equal(state.GetProperty("formula").GetInt64(), state.GetProperty("measured").GetInt64());
        Assert.True(state.GetProperty("match").GetBoolean());
        Assert.Equal(JsonValueKind.Null, rows.Single(r => !r.GetProperty("available").GetBoolean()).GetProperty("state").ValueKind);
    }

    [Fact]
    public void Memory_prints_both_tables_and_writes_json_and_markdown()
    {
        string outDir = Path.Combine(_temp, "memory");
        var (code, stdout, error) = RunCli("memory", "--quick", "--rank", "8", "--tau", "2", "--out", outDir);
        Assert.True(code == 0, error);
        Assert.Contains("Momentum (paper Table 2 setting)", stdout);
        Assert.Contains("Gradient accumulation (paper Table 1 setting)", stdout);
        Assert.Contains("Flora(8)", stdout);
        Assert.Contains("every measurement equals its formula", stdout);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "memory.json")));
        Assert.Equal(8, json.RootElement.GetProperty("rank").GetInt32());
        string md = File.ReadAllText(Path.Combine(outDir, "memory.md"));
        Assert.Contains("| LoRA(8) | Adafactor |", md);
        Assert.Equal(2 * 8, md.Split('\n').Count(l => l.StartsWith("| ") && (l.Contains("| Adafactor |") || l.Contains("| AdamW |"))));
    }

    [Theory]
    [InlineData("--rank", "0", "--rank must be positive")]
    [InlineData("--tau", "-2", "--tau must be positive")]
    [InlineData("--model", "gpt3", "gpt3")]
    public void Bad_memory_options_are_usage_errors(string option, string value, string expected)
    {
        var (code, _, error) = RunCli("memory", option, value);
        Assert.Equal(FloraCli.UsageError, code);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void Quick_with_another_model_is_one_line()
    {
        var (code, _, error) = RunCli("memory", "--quick", "--model", "gpt2-350m");
        Assert.Equal(FloraCli.UserError, code);
        Assert.StartsWith("error: --quick", error);
        Assert.Single(error.TrimEnd().Split('\n'));
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);
}
