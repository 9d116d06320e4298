using System.Diagnostics;
using PtActors.Actors;
using PtActors.Cli.Simulate;
using PtActors.Persistence;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// Seeded fuzzing of malformed <c>ptactors simulate</c> command lines: a valid line with exactly one fault injected (a
/// bad, out-of-range, overlong or garbage value; a duplicate; a missing value; an unknown option; a conflicting pair; a
/// combination over its bound). Each must end with exit 2 and an error naming the offending option, run nothing and
/// write nothing.
/// </summary>
public sealed class SimulateFuzzTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A valid value of each valued option (small enough that no combination is over its bound).</summary>
    private static readonly (string Option, string Value)[] Valid =
    [
        ("--iommus", "2"), ("--domains", "4"), ("--devices", "8"), ("--workload", "nic"), ("--format", "amdv1"),
        ("--policy", "strict"), ("--iotlb", "64"), ("--cpus", "2"), ("--inflight", "4"), ("--late-dma", "0.5"),
        ("--seed", "7"), ("--run-id", "fz"), ("--unsafe", "amd-short"),
    ];

    private static readonly string[] Counts = ["--iommus", "--domains", "--devices", "--iotlb", "--cpus", "--inflight"];

    private static int MaxOf(string option) => option switch
    {
        "--iommus" => SimulateValues.MaxIommus,
        "--domains" => SimulateValues.MaxDomains,
        "--devices" => SimulateValues.MaxDevices,
        "--iotlb" => SimulateValues.MaxIotlbEntries,
        "--cpus" => SimulateValues.MaxCpus,
        _ => SimulateValues.MaxInflight,
    };

    private const string Letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    private static string Garbage(Random rng, string alphabet, int length)
    {
        var chars = new char[length];
        for (int i = 0; i < length; i++)
            chars[i] = alphabet[rng.Next(alphabet.Length)];
        return new string(chars);
    }

    /// <summary>Overlong: thousands of characters.</summary>
    private static string Overlong(Random rng, string alphabet) => Garbage(rng, alphabet, 1000 + rng.Next(9000));

    /// <summary>A value of <paramref name="option"/> that is certainly bad.</summary>
    private static string BadValue(Random rng, string option)
    {
        string weird = rng.Next(4) switch
        {
            0 => "",
            1 => " ",
            2 => "\u00e9\u4e2d\u0001",
            _ => "x" + Garbage(rng, Letters + "!@#$%^&*()", 1 + rng.Next(12)),
        };
        if (Array.IndexOf(Counts, option) >= 0)
        {
            long max = MaxOf(option);
            return rng.Next(10) switch
            {
                0 => "0",
                1 => "-" + (1 + rng.Next(1000)),
                2 => (max + 1 + rng.Next(1_000_000)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                3 => Overlong(rng, "0123456789"),
                4 => "1." + rng.Next(10),
                5 => "1e3",
                6 => "+" + (1 + rng.Next(4)),
                7 => (1 + rng.Next(4)) + " ",
                8 => "0x10",
                _ => weird,
            };
        }
        return option switch
        {
            "--ops" => rng.Next(6) switch
            {
                0 => "0",
                1 => (SimulateValues.MaxOps + 1 + rng.Next(1000)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                2 => Overlong(rng, "0123456789"),
                3 => "2M",
                4 => "-3",
                _ => weird,
            },
            "--duration" => rng.Next(7) switch
            {
                0 => "0s",
                1 => rng.Next(1000) + 1 + "",
                2 => (101 + rng.Next(1000)) + "s",
                3 => Overlong(rng, "0123456789") + "ms",
                4 => "1.5s",
                5 => rng.Next(100) + "m",
                _ => weird,
            },
            "--seed" => rng.Next(5) switch
            {
                0 => "-1",
                1 => "18446744073709551616",
                2 => "0x" + Overlong(rng, "0123456789abcdef"),
                3 => "0xg" + rng.Next(100),
                _ => weird,
            },
            "--late-dma" => rng.Next(6) switch
            {
                0 => "1." + (1 + rng.Next(9)),
                1 => "-0.1",
                2 => "NaN",
                3 => "1e-3",
                4 => (2 + rng.Next(100)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                _ => weird,
            },
            "--run-id" => rng.Next(3) switch
            {
                0 => "a/b" + rng.Next(10),
                1 => Overlong(rng, Letters),
                _ => rng.Next(2) == 0 ? "" : "..",
            },
            "--json" or "--db" => rng.Next(2) == 0 ? "" : " ",
            "--policy" => rng.Next(3) switch
            {
                0 => "batch:" + (SimulateValues.MaxBatch + 1 + rng.Next(1000)),
                1 => "batch:0",
                _ => weird,
            },
            // --workload, --format, --unsafe: names in the wrong case, or garbage
            _ => rng.Next(3) == 0 ? "NIC" : weird,
        };
    }

    private sealed record Case(string[] Args, string Offending, string? Json);

    private Case Make(Random rng, int n)
    {
        var args = new List<string> { "simulate" };
        string json = Path.Combine(_dir, $"fuzz{n}.json");
        int kind = rng.Next(7);
        string target = kind switch
        {
            0 or 1 => rng.Next(3) switch
            {
                0 => Counts[rng.Next(Counts.Length)],
                1 => new[] { "--ops", "--duration", "--seed", "--late-dma", "--policy", "--run-id" }[rng.Next(6)],
                _ => new[] { "--workload", "--format", "--unsafe", "--json", "--db", "--iotlb" }[rng.Next(6)],
            },
            _ => Valid[rng.Next(Valid.Length)].Option,
        };
        // A valid base of a random subset of options, in a random order (the target left out).
        var options = new List<string[]>();
        foreach (var (option, value) in Valid)
        {
            if (option != target && rng.Next(2) == 0)
                options.Add([option, value]);
        }
        bool db = target == "--db";
        if (!db)
            options.Add(["--in-memory"]);
        if (target != "--ops" && target != "--duration")
            options.Add(rng.Next(2) == 0 ? ["--ops", "100"] : ["--duration", "1ms"]);
        if (target != "--json")
            options.Add(["--json", json]);
        string offending = target;
        switch (kind)
        {
            case 0:
            case 1:
                options.Add([target, BadValue(rng, target)]);
                break;
            case 2:
                // The same option twice (valid values).
                var v = Array.Find(Valid, p => p.Option == target).Value;
                options.Add([target, v]);
                options.Add([target, v]);
                break;
            case 3:
                // Missing value: the option last.
                break;
            case 4:
                offending = "--" + Garbage(rng, "abcdefghijklmnopqrstuvwxyz-", 1 + rng.Next(rng.Next(10) == 0 ? 5000 : 12));
                options.Add([offending]);
                break;
            case 5:
                // A conflicting pair.
                if (rng.Next(2) == 0)
                {
                    options.RemoveAll(o => o[0] is "--ops" or "--duration");
                    options.Add(["--ops", "100"]);
                    options.Add(["--duration", "1ms"]);
                    offending = "--ops";
                }
                else
                {
                    options.Add(["--db", Path.Combine(_dir, $"fuzz{n}.db")]);
                    if (db)
                        options.Add(["--in-memory"]);
                    offending = "--in-memory";
                }
                break;
            default:
                // A combination over its bound.
                options.RemoveAll(o => o[0] is "--iommus" or "--iotlb" or "--devices" or "--inflight" or "--domains" or "--cpus");
                (string a, string va, string b, string vb) = rng.Next(3) switch
                {
                    0 => ("--iommus", "64", "--iotlb", (524_288 + 8 * rng.Next(1000)).ToString(System.Globalization.CultureInfo.InvariantCulture)),
                    1 => ("--devices", (100_000 + rng.Next(100_000)).ToString(System.Globalization.CultureInfo.InvariantCulture), "--inflight", "200"),
                    _ => ("--domains", (2048 + rng.Next(10_000)).ToString(System.Globalization.CultureInfo.InvariantCulture), "--cpus", "4096"),
                };
                options.Add([a, va]);
                options.Add([b, vb]);
                offending = a;
                break;
        }
        // Shuffle, then (missing value) the target last.
        for (int i = options.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (options[i], options[j]) = (options[j], options[i]);
        }
        foreach (var o in options)
            args.AddRange(o);
        if (kind == 3)
            args.Add(target);
        return new Case([.. args], offending, target == "--json" ? null : json);
    }

    private sealed class RunnerThatMustNotRun : ISimulationRunner
    {
        public int Calls;

        public Task<SimulationResult> RunAsync(SimulationSettings settings, PersistenceBackend backend,
            IProgress<SimulationProgress>? progress, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            throw new InvalidOperationException("a malformed command line was run");
        }
    }

    [Fact]
    public void FiveThousandMalformedCommandLinesEachEndWithExit2NamingTheOffendingOptionAndNothingRunOrWritten()
    {
        var rng = new Random(20261204);
        var runner = new RunnerThatMustNotRun();
        int created = 0;
        var clock = Stopwatch.StartNew();
        for (int n = 0; n < 5000; n++)
        {
            var c = Make(rng, n);
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            int rc;
            try
            {
                rc = Program.Run(c.Args, new StringReader(""), stdout, stderr, () => runner, stdoutIsTerminal: false);
            }
            catch (Exception e)
            {
                Assert.Fail($"case {n} ({Show(c)}) threw {e.GetType().Name}: {e.Message}");
                return;
            }
            string err = stderr.ToString();
            Assert.True(rc == 2, $"case {n} ({Show(c)}): exit {rc}, stderr {err}");
            Assert.True(err.Contains(c.Offending, StringComparison.Ordinal), $"case {n} ({Show(c)}): stderr does not name {Trim(c.Offending)}: {Trim(err)}");
            Assert.StartsWith("ptactors simulate: ", err, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
            Assert.Equal("", stdout.ToString());
            if (c.Json is not null && File.Exists(c.Json))
                created++;
        }
        Assert.Equal(0, runner.Calls);
        Assert.Equal(0, created);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
    }

    private static string Trim(string s) => s.Length > 200 ? s[..200] + "..." : s;

    private static string Show(Case c) => Trim(string.Join(' ', c.Args));
}
