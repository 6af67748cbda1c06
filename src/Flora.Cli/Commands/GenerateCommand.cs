using System.CommandLine;
using Flora.Backends;
using Flora.Nn.Models;
using Flora.Training;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora generate</c>: text from a training checkpoint. A language model continues <c>--prompt</c> (sampling,
/// greedy, or beam search with <c>--beam</c>); a translation model translates <c>--source</c> (beam search,
/// greedy by default), through the run's template.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a run directory (its latest checkpoint) or a checkpoint directory", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "text to continue", DefaultValueFactory = _ => "In the beginning" };
        var source = new Option<string?>("--source") { Description = "translation checkpoints: the sentence to translate" };
        var maxTokens = Options.PositiveInt("--max-tokens", "tokens to generate", 60);
        var temperature = Options.PositiveFloat("--temperature", "softmax temperature", 0.8f);
        var topK = Options.NonNegativeInt("--top-k", "sample among the k most likely tokens (0 = all)", 40);
        var greedy = new Option<bool>("--greedy") { Description = "always take the most likely token" };
        var beam = Options.NonNegativeInt("--beam", "beam search with this many beams (language models: instead of sampling; translation: 1 = greedy)", 0);
        var lengthPenalty = Options.Float("--length-penalty", "beam score = log-probability / length^penalty", 1f, NumberRange.Finite);
        var seed = Options.Seed("--seed", "sampling seed", 0);
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var printIds = new Option<bool>("--print-ids") { Description = "also print the prompt's and the generated token ids" };
        var command = new Command("generate", "Generate text from a checkpoint (greedy, temperature, top-k, beam search; translation with --source).")
        {
            checkpoint, prompt, source, maxTokens, temperature, topK, greedy, beam, lengthPenalty, seed, device, printIds,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            using var loaded = CheckpointModel.Open(parse.GetValue(checkpoint)!, parse.GetValue(device)!);
            foreach (string note in loaded.Notes) error.WriteLine($"warning: {note}");
            var tokenizer = loaded.Tokenizer;
            bool translates = loaded.Options.Task == "translate";
            if (!translates && parse.GetValue(source) is not null)
                throw new ArgumentException($"--source is for translation checkpoints; {loaded.Directory} is a language model: give the text to continue with --prompt");
            if (translates && parse.GetResult(prompt) is { Implicit: false })
                throw new ArgumentException($"--prompt is for language-model checkpoints; {loaded.Directory} translates: give the sentence with --source");
            int eos = tokenizer.EndOfText ?? -1;
            console.MarkupLine($"[grey]{Markup.Escape(loaded.Info.Model)}, step {loaded.Info.Step}[/]");
            if (translates)
            {
                string text = parse.GetValue(source) ?? throw new ArgumentException("this checkpoint translates: give the sentence with --source");
                var template = loaded.TranslationTemplate;
                var example = template.Encode(text, null);
                int[] input = template.Layout == TranslationLayout.DecoderOnly ? example.Prompt : example.Source;
                var beamOptions = new BeamOptions(Math.Max(1, parse.GetValue(beam)), parse.GetValue(lengthPenalty), parse.GetValue(maxTokens));
                int[] output = BeamSearch.Generate(loaded.Model, [input], template.EndOfText, beamOptions)[0];
                console.MarkupLine($"[bold]{Markup.Escape(text)}[/]");
                console.WriteLine(tokenizer.Decode(output).Trim());
                if (parse.GetValue(printIds)) console.WriteLine($"ids: {string.Join(',', input)} | {string.Join(',', output)}");
                return 0;
            }
            if (loaded.Model.IsEncoderDecoder) throw new ArgumentException($"{loaded.Info.Model} is an encoder-decoder: it needs a translation run and --source");
            string promptText = parse.GetValue(prompt)!;
            int[] promptIds = tokenizer.Encode(promptText);
            int[] generated = parse.GetValue(beam) > 0
                ? BeamSearch.Generate(loaded.Model, [promptIds], eos, new BeamOptions(parse.GetValue(beam), parse.GetValue(lengthPenalty), parse.GetValue(maxTokens)))[0]
                : Generator.Sample(loaded.Model, promptIds, parse.GetValue(maxTokens),
                    new SamplingOptions(parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(greedy), parse.GetValue(seed)), tokenizer.EndOfText).ToArray();
            console.MarkupLine($"[bold]{Markup.Escape(promptText)}[/]{Markup.Escape(tokenizer.Decode(generated))}");
            if (parse.GetValue(printIds)) console.WriteLine($"ids: {string.Join(',', promptIds.Concat(generated))}");
            return 0;
        }));
        return command;
    }
}
