using System.Text.Json.Nodes;
using Flora.Checkpoints;
using Flora.Nn.Models.HuggingFace;
using Flora.Tensors;
using Flora.Training;
using static Flora.Tests.TestCli;

namespace Flora.Tests.HuggingFace;

/// <summary>
/// The command line with Hugging Face directories: a small Llama trained from a preset is exported with its tokenizer;
/// the export is inspected, generates and evaluates exactly as the run does, fine-tunes with LoRA and FLORA's compressed
/// accumulation from --init-from, resumes, and is exported again, merged and as a PEFT adapter.
/// </summary>
public sealed class HfCliTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-hf-cli-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private string P(string name) => Path.Combine(_temp, name);

    private static string Ok((int Code, string Out, string Error) result)
    {
        Assert.True(result.Code == 0, $"exit {result.Code}: {result.Error}\n{result.Out}");
        return result.Out;
    }

    private static readonly string[] Small = ["--batch", "2", "--seq-len", "16", "--eval-every", "100", "--checkpoint-every", "100", "--warmup", "1"];

    [Fact]
    public void A_llama_goes_out_and_back_in_through_the_command_line()
    {
        Ok(RunCli(["train", "--model", "llama-tiny", "--tokenizer", "bpe:300", "--steps", "2", "--out", P("run1"), .. Small]));
        string export = Ok(RunCli("export", "--checkpoint", P("run1"), "--out", P("hf1")));
        Assert.Contains("model.safetensors", export);
        foreach (string file in new[] { "config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(P("hf1"), file)), $"{file} missing");
        Assert.Equal("LlamaForCausalLM", JsonNode.Parse(File.ReadAllText(Path.Combine(P("hf1"), "config.json")))!["architectures"]![0]!.GetValue<string>());

        string inspect = Ok(RunCli("inspect", P("hf1")));
        Assert.Contains("LlamaForCausalLM", inspect);
        Assert.Contains($"{HfDirectory.Open(P("hf1")).Config.ParameterCount:N0} parameters", inspect);
        Assert.Contains("vocab.json", inspect);

        // The exported directory is the run's model: the same greedy text and the same validation loss.
        string[] generate = ["generate", "--prompt", "In the beginning", "--max-tokens", "6", "--greedy", "--print-ids"];
        Assert.Equal(LastLine(Ok(RunCli([.. generate, "--checkpoint", P("run1")]))), LastLine(Ok(RunCli([.. generate, "--checkpoint", P("hf1")]))));
        Ok(RunCli("eval", "--checkpoint", P("run1"), "--out", P("eval1")));
        Ok(RunCli("eval", "--checkpoint", P("hf1"), "--out", P("eval-hf1")));
        double Loss(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, Evaluation.ScoresFile)))!["loss"]!.GetValue<double>();
        Assert.Equal(Loss(P("eval1")), Loss(P("eval-hf1")), 1e-6);

        // Fine-tuning from the directory: its tokenizer, LoRA (adapters only, so that a PEFT adapter holds every change),
        // FLORA's compressed accumulation; then resuming.
        var usage = RunCli(["train", "--init-from", P("hf1"), "--model", "llama-tiny", "--steps", "1", "--out", P("refused"), .. Small]);
        Assert.Equal(1, usage.Code);
        Assert.Contains("leave --model out", usage.Error);
        Ok(RunCli(["train", "--init-from", P("hf1"), "--lora", "16", "--lora-adapters-only", "--optimizer", "flora", "--rank", "4", "--accumulate", "compressed", "--tau", "2",
            "--steps", "2", "--out", P("run2"), .. Small]));
        Assert.True(File.Exists(Path.Combine(P("run2"), "tokenizer", "vocab.json")));
        Ok(RunCli("train", "--resume", P("run2"), "--steps", "3"));

        var notFromHf = RunCli("export", "--checkpoint", P("run1"), "--out", P("peft1"), "--peft");
        Assert.Equal(1, notFromHf.Code);
        Assert.Contains("--merge-lora", notFromHf.Error);
        var refused = RunCli("export", "--checkpoint", P("run2"), "--out", P("hf2"));
        Assert.Equal(1, refused.Code);
        Assert.Contains("--merge-lora or --peft", refused.Error);
        Assert.False(Directory.Exists(P("hf2")));
        Ok(RunCli("export", "--checkpoint", P("run2"), "--out", P("hf2"), "--merge-lora", "--max-shard-size", "30KB"));
        Assert.True(File.Exists(Path.Combine(P("hf2"), HfDirectory.IndexFile)));
        Ok(RunCli("export", "--checkpoint", P("run2"), "--out", P("peft2"), "--peft"));
        var adapter = JsonNode.Parse(File.ReadAllText(Path.Combine(P("peft2"), HfExport.AdapterConfigFile)))!;
        Assert.Equal(16, adapter["r"]!.GetValue<int>());
        Assert.Equal(Path.GetFullPath(P("hf1")), adapter["base_model_name_or_path"]!.GetValue<string>());

        // The paper's LoRA (the default) also trains embeddings and norms, which a PEFT adapter cannot carry: refused.
        Ok(RunCli(["train", "--init-from", P("hf1"), "--lora", "16", "--rank", "4", "--steps", "1", "--out", P("run4"), .. Small]));
        var lossy = RunCli("export", "--checkpoint", P("run4"), "--out", P("peft4"), "--peft");
        Assert.Equal(1, lossy.Code);
        Assert.Contains("besides the LoRA adapters", lossy.Error);
        Assert.False(Directory.Exists(P("peft4")));

        // The merged export computes what the fine-tuned run computes.
        using var run = CheckpointModel.Open(P("run2"));
        using var merged = CheckpointModel.Open(P("hf2"));
        int[] ids = HfModelTests.Ids(run.Model.Vocabulary);
        HfModelTests.AssertClose(HfModelTests.Logits(run.Backend, run.Model, ids).Select(x => (double)x).ToArray(),
            HfModelTests.Logits(merged.Backend, merged.Model, ids), 1e-5, "merged export");
    }

    [Fact]
    public void A_gpt2_directory_fine_tunes_with_its_own_tokenizer()
    {
        Ok(RunCli(["train", "--model", "gpt-tiny", "--tokenizer", "bpe:300", "--steps", "1", "--out", P("gpt"), .. Small]));
        // --check-ids: the ids of a file like a fixture's expected.safetensors, and Flora's logits for them, for bench/hf_roundtrip.py.
        long[] ids = [5, 17, 2, 99, 250, 3, 8, 13, 21, 34];
        new SafeTensorsWriter().Add("input_ids", ids, new Shape(2, 5)).Write(P("ids.safetensors"));
        Ok(RunCli("export", "--checkpoint", P("gpt"), "--out", P("gpt-hf"), "--check-ids", P("ids.safetensors")));
        Assert.Contains("GPT2LMHeadModel", Ok(RunCli("inspect", P("gpt-hf"))));
        using (var check = SafeTensorsFile.Open(Path.Combine(P("gpt-hf"), ModelExport.CheckFile)))
        using (var exported = CheckpointModel.Open(P("gpt-hf")))
        {
            Assert.Equal(ids, check.ReadLongs("input_ids"));
            Assert.Equal([2L, 5, exported.Model.Vocabulary], check.GetInfo("logits").Shape);
            Assert.Equal(HfModelTests.Logits(exported.Backend, exported.Model, ids.Select(i => (int)i).ToArray()), check.ReadFloats("logits"));
        }
        string train = Ok(RunCli(["train", "--init-from", P("gpt-hf"), "--optimizer", "adamw", "--lomo", "--steps", "2", "--out", P("gpt-ft"), .. Small]));
        Assert.Contains("GPT-2", train);
        var options = TrainingCheckpoint.ReadInfo(TrainingCheckpoint.Resolve(P("gpt-ft"))).Options;
        Assert.Equal((Trainer.HuggingFaceModel, TokenizerSetup.HuggingFace), (options.Model, options.Tokenizer));
    }

    [Fact]
    public void A_llama_directory_with_a_tokenizer_json_trains_generates_and_exports_with_it()
    {
        // A Llama 3-style tokenizer.json (2000 tokens and three specials; BOS <|begin_of_text|> = 2000 before every text).
        string fixture = Path.Combine(HfFixtureTests.Tokenizers, "llama3-style", "tokenizer.json");
        Assert.True(File.Exists(fixture), $"{fixture} is missing (tests/fixtures/hf/README.md)");
        string dir = HfTestModel.Llama(vocabulary: 2003).Randomize(7).Write(P("llama3"));
        File.Copy(fixture, Path.Combine(dir, "tokenizer.json"));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}""");

        string generated = Ok(RunCli("generate", "--checkpoint", dir, "--prompt", "In the beginning", "--max-tokens", "3", "--greedy", "--print-ids"));
        Assert.StartsWith("ids: 2000,", LastLine(generated));                                // BOS, as transformers' tokenizer(prompt) adds it
        Ok(RunCli(["train", "--init-from", dir, "--rank", "8", "--steps", "2", "--out", P("run3"), .. Small]));
        Assert.True(File.Exists(Path.Combine(P("run3"), "tokenizer", "tokenizer.json")));
        Ok(RunCli("export", "--checkpoint", P("run3"), "--out", P("out3")));
        Assert.Equal(File.ReadAllBytes(fixture), File.ReadAllBytes(Path.Combine(P("out3"), "tokenizer.json")));
        using var exported = CheckpointModel.Open(P("out3"));
        Assert.IsType<Flora.Data.Tokenizers.HuggingFaceTokenizer>(exported.Tokenizer);
        Assert.Equal(2000, exported.Tokenizer.BeginOfText);
    }

    private static string LastLine(string text) => text.TrimEnd().Split('\n')[^1];
}
