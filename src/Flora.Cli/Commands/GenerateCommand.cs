using System.CommandLine;
using Flora.Backends;
using Flora.Nn.Models;
using Flora.Training;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary><c>flora generate</c>: samples text from a training checkpoint.</summary>
internal static class GenerateCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a run directory (its latest checkpoint) or a checkpoint directory", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "text to continue", DefaultValueFactory = _ => "In the beginning" };
        var maxTokens = Options.PositiveInt("--max-tokens", "tokens to generate", 60);
        var temperature = Options.PositiveFloat("--temperature", "softmax temperature", 0.8f);
        var topK = new Option<int>("--top-k") { Description = "sample among the k most likely tokens (0 = all)", DefaultValueFactory = _ => 40 };
        var greedy = new Option<bool>("--greedy") { Description = "always take the most likely token" };
        var seed = new Option<ulong>("--seed") { Description = "sampling seed", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var printIds = new Option<bool>("--print-ids") { Description = "also print the prompt's and the generated token ids" };
        var command = new Command("generate", "Generate text from a checkpoint (greedy, temperature, top-k).")
        {
            checkpoint, prompt, maxTokens, temperature, topK, greedy, seed, device, printIds,
        };
        command.SetAction(parse => FloraCli.Guard(error, () =>
        {
            string dir = TrainingCheckpoint.Resolve(parse.GetValue(checkpoint)!);
            var info = TrainingCheckpoint.ReadInfo(dir);
            string run = Trainer.RunDirectoryOf(dir);
            var (tokenizer, identity) = TokenizerSetup.ForCheckpoint(info.Options, run);
            if (identity != info.TokenizerHash) throw new InvalidDataException($"{dir}: the tokenizer in {run} is not the one this checkpoint was trained with");
            using var backend = BackendFactory.Create(parse.GetValue(device)!);
            var o = info.Options;
            using var model = ModelFactory.Create(o.Model, backend, tokenizer.VocabularySize, o.Seed, 0f,
                o.LoraRank > 0 ? l => new Flora.Nn.LoraLinear(l, Math.Min(o.LoraRank, Math.Min(l.InFeatures, l.OutFeatures)), o.LoraAlpha, 0) : null, o.SequenceLength);
            TrainingCheckpoint.LoadWeights(dir, model);
            string text = parse.GetValue(prompt)!;
            var sampling = new SamplingOptions(parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(greedy), parse.GetValue(seed));
            int[] promptIds = tokenizer.Encode(text);
            int[] generated = Generator.Sample(model, promptIds, parse.GetValue(maxTokens), sampling, tokenizer.EndOfText).ToArray();
            console.MarkupLine($"[grey]{Markup.Escape(info.Model)}, step {info.Step}[/]");
            console.MarkupLine($"[bold]{Markup.Escape(text)}[/]{Markup.Escape(tokenizer.Decode(generated))}");
            if (parse.GetValue(printIds)) console.WriteLine($"ids: {string.Join(',', promptIds.Concat(generated))}");
            return 0;
        }));
        return command;
    }
}
