using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// A progress display for long work: a live Spectre.Console progress bar on an interactive terminal,
/// plain lines (one per reported milestone) when the output is redirected, as in CI logs.
/// </summary>
internal sealed class ProgressReporter
{
    private readonly IAnsiConsole _console;

    public ProgressReporter(IAnsiConsole console) => _console = console;

    public bool Interactive => _console.Profile.Capabilities.Interactive && _console.Profile.Capabilities.Ansi;

    /// <summary>Runs <paramref name="work"/> with one bar per task name; <paramref name="work"/> gets a callback (task, done, total, text, milestone).</summary>
    public T Run<T>(IReadOnlyList<string> tasks, double total, Func<Action<string, double, string, bool>, T> work)
    {
        if (!Interactive)
        {
            return work((task, done, text, milestone) =>
            {
                if (milestone) _console.WriteLine($"  {task,-10} {done,7:0}/{total:0}  {text}");
            });
        }
        T result = default!;
        _console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var bars = tasks.ToDictionary(t => t, t => ctx.AddTask(Markup.Escape(t), autoStart: false, maxValue: total));
                result = work((task, done, text, _) =>
                {
                    var bar = bars[task];
                    if (!bar.IsStarted) bar.StartTask();
                    bar.Value = done;
                    bar.Description = Markup.Escape($"{task,-8} {text}");
                });
            });
        return result;
    }
}
