using System.ComponentModel;
using System.Diagnostics;

using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>
/// The Debian packages the prepared data is read from, asked about with <c>dpkg-query</c> and installed with
/// <c>apt-get</c>, worded as <c>scripts/deps.sh</c> words it.
/// </summary>
public static class DebianPackages
{
    /// <summary>Longest an apt-get call may take.</summary>
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(15);

    /// <summary>The installed version of a package (<c>dpkg-query -W</c>), or null when it is not installed or dpkg-query is not there.</summary>
    public static string? InstalledVersion(string package)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(package);
        var (code, output, _) = TryRun("dpkg-query", ["-W", "-f=${Status}\t${Version}", package], TimeSpan.FromSeconds(30));
        if (code != 0) return null;
        string[] fields = output.Trim().Split('\t');
        return fields.Length == 2 && fields[0].EndsWith("install ok installed", StringComparison.Ordinal) && fields[1].Length > 0 ? fields[1] : null;
    }

    /// <summary>The error for packages that are missing and not installed here, as <c>scripts/deps.sh</c> words it.</summary>
    public static FloraException MissingError(IReadOnlyCollection<string> packages, string? why = null)
    {
        ArgumentNullException.ThrowIfNull(packages);
        string list = string.Join(' ', packages);
        return new FloraException($"missing Debian packages: {list}{(why is null ? "" : $" ({why})")}: install them with: sudo apt-get install -y {list}"
            + " ('flora data prepare' installs them itself when run as root)");
    }

    /// <summary>
    /// Installs packages with <c>apt-get update</c> and <c>apt-get install -y --no-install-recommends</c>, as
    /// <c>scripts/deps.sh</c> does. The caller checks that the process runs as root.
    /// </summary>
    /// <exception cref="FloraException">apt-get is missing or fails.</exception>
    public static void Install(IReadOnlyCollection<string> packages)
    {
        ArgumentNullException.ThrowIfNull(packages);
        if (packages.Count == 0) return;
        foreach (var arguments in new[] { new[] { "update", "-qq" }, ["install", "-y", "-qq", "--no-install-recommends", .. packages] })
        {
            var (code, _, error) = TryRun("apt-get", arguments, InstallTimeout);
            string command = "apt-get " + string.Join(' ', arguments);
            if (code == -1) throw new FloraException($"cannot run '{command}': apt-get not found; install the packages by hand: {string.Join(' ', packages)}");
            if (code != 0)
            {
                string tail = error.Trim();
                if (tail.Length > 300) tail = "..." + tail[^300..];
                throw new FloraException($"'{command}' failed with exit code {code}{(tail.Length > 0 ? $": {tail}" : "")}");
            }
        }
    }

    /// <summary>Runs a program; exit code -1 when it cannot be started.</summary>
    private static (int Code, string Output, string Error) TryRun(string program, IReadOnlyList<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in arguments) start.ArgumentList.Add(a);
        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        Process? process;
        try
        {
            process = Process.Start(start);
        }
        catch (Win32Exception)
        {
            return (-1, "", "");
        }
        if (process is null) return (-1, "", "");
        using (process)
        {
            process.StandardInput.Close();
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                throw new FloraException($"'{program} {string.Join(' ', arguments)}' did not finish within {timeout.TotalMinutes:F0} minutes");
            }
            process.WaitForExit();
            return (process.ExitCode, output.GetAwaiter().GetResult(), error.GetAwaiter().GetResult());
        }
    }
}
