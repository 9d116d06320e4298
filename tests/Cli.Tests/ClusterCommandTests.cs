using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Npgsql;
using PtActors.Tests.Shared;
using Xunit;
using Xunit.Abstractions;
using static PtActors.Cli.Tests.EndToEndTests;

namespace PtActors.Cli.Tests;

/// <summary>
/// <c>ptactors node</c> and <c>simulate --cluster</c> on loopback with a real PostgreSQL server: node processes
/// started as a user starts them, a run's lanes sharded over them, the same figures as in one process.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterCommandTests(PostgresServer server, ITestOutputHelper output) : IDisposable
{
    private readonly List<Process> _nodes = new();

    public void Dispose()
    {
        foreach (var node in _nodes)
        {
            if (!node.HasExited)
                node.Kill(entireProcessTree: true);
            node.Dispose();
        }
        NpgsqlConnection.ClearAllPools();
    }

    private static readonly string[] Run =
        ["simulate", "--ops", "20000", "--iommus", "4", "--domains", "8", "--devices", "64", "--workload", "mixed", "--seed", "5"];

    private static readonly HashSet<string> MachineKeys = ["wall_s", "ops_per_sec", "run_id"];

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts <c>ptactors</c> with <paramref name="args"/>, its output redirected (read it before it fills).</summary>
    private static Process Launch(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ptactors.dll"));
        foreach (var a in args)
            start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }

    /// <summary>
    /// Every figure of the run in <paramref name="json"/> but the machine's equals <paramref name="expected"/>'s (a
    /// one-process run), and <c>verify</c> passes on its journal.
    /// </summary>
    private static void AssertSameFiguresAndVerified(Dictionary<string, JsonElement> expected, string json, string conn, string runId, string what)
    {
        var got = Figures(json);
        foreach (var key in expected.Keys.Where(k => !MachineKeys.Contains(k)))
            Assert.True(expected[key].GetRawText() == got[key].GetRawText(), $"{what}, {key}: one process {expected[key].GetRawText()}, cluster {got[key].GetRawText()}");
        var verify = Ptactors(["verify", "--postgres", conn, "--run", runId]);
        Assert.True(verify.Exit == 0, verify.Stdout + verify.Stderr);
        Assert.Contains($"{runId} completed ", verify.Stdout);
    }

    /// <summary>Starts <c>ptactors node</c> and waits until it says it is up.</summary>
    private Process StartNode(string seed, int port, string conn, params string[] more)
    {
        var process = Launch(["node", "--seed", seed, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--postgres", conn, .. more]);
        _nodes.Add(process);
        var up = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line && line.StartsWith("node akka.tcp://", StringComparison.Ordinal))
                up.TrySetResult(line);
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.WriteLine("node stderr: " + e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Assert.True(up.Task.Wait(TimeSpan.FromSeconds(90)), $"node on port {port} did not come up");
        output.WriteLine(up.Task.Result);
        return process;
    }

    private static Dictionary<string, JsonElement> Figures(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());
    }

    [PostgresFact]
    public void A_run_on_one_two_and_three_nodes_gives_the_figures_of_one_process_and_verifies()
    {
        string conn = server.CreateDatabase();
        string dir = Directory.CreateTempSubdirectory("ptactors-cluster-").FullName;
        try
        {
            var one = Ptactors([.. Run, "--postgres", conn, "--run-id", "local", "--json", Path.Combine(dir, "local.json")]);
            Assert.True(one.Exit == 0, one.Stderr);
            var expected = Figures(Path.Combine(dir, "local.json"));

            int first = FreePort();
            string seed = "127.0.0.1:" + first;
            StartNode(seed, first, conn);
            for (int nodes = 1; nodes <= 3; nodes++)
            {
                // The third one as a node behind NAT is started: listening on every interface, telling the cluster
                // the address the others reach it at.
                if (nodes == 2)
                    StartNode(seed, FreePort(), conn);
                else if (nodes == 3)
                    StartNode(seed, FreePort(), conn, "--public-host", "127.0.0.1");
                string runId = $"cluster-{nodes}", json = Path.Combine(dir, runId + ".json");
                var r = Ptactors([.. Run, "--cluster", seed, "--postgres", conn, "--run-id", runId, "--json", json]);
                Assert.True(r.Exit == 0, r.Stderr);
                AssertSameFiguresAndVerified(expected, json, conn, runId, $"{nodes} node(s)");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Issue 18's node loss: three node processes, one killed with SIGKILL mid-run. Its lane is rebuilt on another node
    /// from the journal, the run finishes with every figure of a one-process run (so nothing acknowledged was lost
    /// or done twice), says which lane it rebuilt, and <c>verify</c> passes on its journal.
    /// </summary>
    [PostgresFact]
    public void A_node_killed_mid_run_has_its_lane_rebuilt_elsewhere_and_the_run_finishes_with_the_same_figures()
    {
        string conn = server.CreateDatabase();
        string dir = Directory.CreateTempSubdirectory("ptactors-node-loss-").FullName;
        try
        {
            string[] run = ["simulate", "--ops", "2000000", "--iommus", "4", "--domains", "16", "--devices", "128", "--workload", "nic", "--seed", "11"];
            var one = Ptactors([.. run, "--postgres", conn, "--run-id", "local", "--json", Path.Combine(dir, "local.json")]);
            Assert.True(one.Exit == 0, one.Stderr);
            var expected = Figures(Path.Combine(dir, "local.json"));
            // 128 NICs on one CPU: back-pressure holds them back, so the rebuilt lane must re-execute its held windows alike.
            Assert.True(expected["throttled"].GetInt64() > 0);

            // A fresh cluster of three: the run's four lanes spread over all of them (the least loaded node gets the
            // next shard), so whichever node is killed holds a lane.
            int first = FreePort();
            string seed = "127.0.0.1:" + first;
            StartNode(seed, first, conn);
            int second = FreePort();
            StartNode(seed, second, conn);
            var victim = StartNode(seed, FreePort(), conn);
            // The run names two seeds (any one up will do).
            string seeds = $"{seed},127.0.0.1:{second}";

            string json = Path.Combine(dir, "lost.json");
            using var simulate = Launch([.. run, "--cluster", seeds, "--postgres", conn, "--run-id", "lost", "--json", json]);
            var stdout = new System.Text.StringBuilder();
            var stderr = new System.Text.StringBuilder();
            bool killed = false;
            simulate.OutputDataReceived += (_, e) =>
            {
                if (e.Data is not { } line)
                    return;
                lock (stdout)
                    stdout.AppendLine(line);
                // The first progress line with work done: the run is under way. Kill a node the hard way.
                if (!killed && line.StartsWith("progress ", StringComparison.Ordinal) && !line.Contains(" ops=0/", StringComparison.Ordinal))
                {
                    killed = true;
                    victim.Kill();
                    output.WriteLine("killed a node at: " + line);
                }
            };
            simulate.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
            simulate.BeginOutputReadLine();
            simulate.BeginErrorReadLine();
            if (!simulate.WaitForExit(TimeSpan.FromMinutes(5)))
            {
                simulate.Kill(entireProcessTree: true);
                Assert.Fail("the run did not finish within 5 minutes\n" + stdout + stderr);
            }
            simulate.WaitForExit();
            output.WriteLine(stdout.ToString());
            Assert.True(killed, "no progress line before the run ended: nothing was killed mid-run\n" + stdout);
            Assert.True(simulate.ExitCode == 0, $"exit {simulate.ExitCode}\n{stdout}{stderr}");
            Assert.Matches(@"note: lane \d \(lost\.\d\) was lost with its node akka\.tcp://ptactors@127\.0\.0\.1:\d+ after \d+ calls; rebuilt from the journal on another node akka\.tcp://", stdout.ToString());

            AssertSameFiguresAndVerified(expected, json, conn, "lost", "after a lost node");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Cluster_options_are_checked_before_anything_runs()
    {
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["simulate", "--cluster", "127.0.0.1:4053", "--ops", "10"], "--cluster needs --postgres CONN"),
            (["simulate", "--cluster", "127.0.0.1", "--postgres", "Host=x;Database=y", "--ops", "10"], "--cluster"),
            (["simulate", "--cluster", "127.0.0.1:99999", "--postgres", "Host=x;Database=y", "--ops", "10"], "--cluster"),
            (["simulate", "--cluster", "127.0.0.1:4053,10.0.0.2", "--postgres", "Host=x;Database=y", "--ops", "10"], "--cluster"),
            (["simulate", "--cluster", "127.0.0.1:4053", "--postgres", "Host=x;Database=y", "--ack-log", "a.log", "--ops", "10"], "--ack-log and --cluster cannot be used together"),
            (["node", "--seed", "localhost", "--postgres", "Host=x;Database=y"], "--seed: 'localhost' is not HOST:PORT"),
            (["node", "--seed", "127.0.0.1:4053,127.0.0.1:0", "--postgres", "Host=x;Database=y"], "--seed: '0' is not a port (1..65535)"),
            (["node", "--seed", "127.0.0.1:4053", "--port", "0", "--postgres", "Host=x;Database=y"], "--port"),
            (["node", "--seed", "127.0.0.1:4053"], "--postgres"),
            (["node", "--seed", "127.0.0.1:4053", "--postgres", "Host=x;Database=y", "--public-host", "10.0.0.1:70000"], "--public-host"),
        })
        {
            var r = Ptactors(args);
            Assert.True(r.Exit == 2, $"{string.Join(' ', args)}: exit {r.Exit}\n{r.Stderr}");
            Assert.Contains(expected, r.Stderr);
            Assert.DoesNotContain("   at ", r.Stderr);
        }
    }
}
