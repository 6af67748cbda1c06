namespace Flora.Training;

/// <summary>
/// Where a <see cref="Trainer"/> starts: its run directory (locked), the options it runs with, the checkpoint it
/// continues (null for a new run, or a run killed before its first checkpoint) and the run's recorded run.json.
/// </summary>
internal sealed record RunStart(RunDirectory Directory, TrainOptions Options, CheckpointInfo? Checkpoint, RunManifest? Recorded)
{
    /// <summary>
    /// A new run: corpus and data paths made absolute, the options checked, the directory taken (see
    /// <see cref="RunDirectory.CreateFresh"/>); a rank that is not the <paramref name="lead"/> of a data-parallel run
    /// only follows the directory the lead takes.
    /// </summary>
    public static RunStart Fresh(TrainOptions options, bool overwrite, ICollection<string> notices, bool lead = true)
    {
        options = options with
        {
            Corpus = options.Corpus is null ? null : Path.GetFullPath(options.Corpus),
            Data = options.Task == "translate" ? Path.GetFullPath(options.Data ?? Data.Corpora.PreparedData.DefaultDirectory) : options.Data,
        };
        options.Validate();
        var run = lead ? RunDirectory.CreateFresh(options.OutputDirectory, overwrite, notices) : RunDirectory.Follow(options.OutputDirectory);
        return new RunStart(run, options with { OutputDirectory = run.Path }, null, null);
    }

    /// <summary>
    /// The continuation of the run <paramref name="resumeFrom"/> names (a run directory or one of its checkpoints),
    /// with the run's own options and <paramref name="steps"/> (0: the run's own; fewer is an error).
    /// </summary>
    public static RunStart Resume(string resumeFrom, int steps, ICollection<string> notices, bool lead = true)
    {
        var (path, checkpoint) = FindResumePoint(resumeFrom);
        var run = lead ? RunDirectory.OpenExisting(path, notices) : RunDirectory.Follow(path);
        try
        {
            var recorded = RunManifest.Read(run.Path);
            CheckpointInfo? info = checkpoint is null ? null : TrainingCheckpoint.ReadInfo(checkpoint);
            if (info is null)
                notices.Add($"{run.Path} has no checkpoint yet: starting the run again from step 0 with its recorded settings");
            else if (recorded is null)
                notices.Add($"{run.Path} has no {RunManifest.FileName} (made by an older flora): its corpus and tokenizer were not recorded and are not checked");
            if (checkpoint is not null && LatestOf(run.Path) is string latest && Path.GetFullPath(latest) != Path.GetFullPath(checkpoint))
                notices.Add($"resuming from {checkpoint}, not the run's latest checkpoint ({latest}): the later checkpoints and metrics are replaced as the run passes them");
            TrainOptions planned = info?.Options ?? recorded!.Options;
            var options = planned with { Steps = ExtendedSteps(steps, planned.Steps, info?.Step ?? 0), OutputDirectory = run.Path };
            options.Validate();
            return new RunStart(run, options, info, recorded);
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>The run directory and the checkpoint (null: none yet, the run restarts from its run.json) that <paramref name="resumeFrom"/> names.</summary>
    private static (string Run, string? Checkpoint) FindResumePoint(string resumeFrom)
    {
        if (File.Exists(Path.Combine(resumeFrom, TrainingCheckpoint.StateFile))) return (Trainer.RunDirectoryOf(resumeFrom), resumeFrom);
        if (System.IO.Directory.Exists(resumeFrom) && !File.Exists(Path.Combine(resumeFrom, TrainingCheckpoint.Directory, TrainingCheckpoint.Latest))
            && File.Exists(Path.Combine(resumeFrom, RunManifest.FileName)))
            return (resumeFrom, null);
        return (resumeFrom, TrainingCheckpoint.Resolve(resumeFrom));
    }

    /// <summary>The latest checkpoint of a run, or null when it has none (or its reference is broken: resuming a named checkpoint still works).</summary>
    private static string? LatestOf(string run)
    {
        try { return TrainingCheckpoint.Resolve(run); }
        catch (Exception e) when (e is FloraException or InvalidDataException or IOException) { return null; }
    }

    /// <summary>The steps of a resumed run: the run's own (<paramref name="requested"/> 0 or equal), or more; never fewer, and more than done.</summary>
    private static int ExtendedSteps(int requested, int planned, long done)
    {
        if (requested > 0 && requested < planned)
            throw new ArgumentException($"--steps {requested} is fewer than the run's {planned}: a resumed run can only be extended (its learning-rate schedule spans all its steps)");
        int steps = Math.Max(requested, planned);
        if (steps <= done)
            throw new ArgumentException(requested > planned
                ? $"--steps {requested} does not extend the run: its checkpoint is at step {done}; give more than {done}"
                : $"the run already reached step {done} of {planned}: give --steps with more than {done} to extend it");
        return steps;
    }
}
