using System.Text.Json;
using Microsoft.Data.Sqlite;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary><c>ptactors replay</c> end to end: a simulate recording replayed under its own and other configurations.</summary>
public sealed class ReplayCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-replay-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private static (int Exit, string Stdout, string Stderr) Ptactors(params string[] args) => EndToEndTests.Ptactors(args);

    private string Record(string runId, string workload, string policy, string format = "x86_64", string db = "r.db")
    {
        string path = Path.Combine(_dir, db);
        var r = Ptactors("simulate", "--db", path, "--run-id", runId, "--workload", workload, "--policy", policy, "--format", format,
            "--ops", "4000", "--iommus", "2", "--domains", "4", "--devices", "16", "--cpus", "2");
        Assert.True(r.Exit == 0, r.Stderr);
        return path;
    }

    [Fact]
    public void PassthroughIsNoPolicyToReplayUnderAndAPassthroughRunHasNothingToReplay()
    {
        string db = Record("pt", "nvme", "passthrough");
        var r = Ptactors("replay", "--db", db, "--run", "pt");
        Assert.Equal(2, r.Exit);
        Assert.Contains("run 'pt' ran under passthrough", r.Stderr, StringComparison.Ordinal);

        Record("st", "nvme", "strict", db: "r2.db");
        r = Ptactors("replay", "--db", Path.Combine(_dir, "r2.db"), "--policy", "strict,passthrough");
        Assert.Equal(2, r.Exit);
        Assert.Contains("--policy", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("passthrough has no IOMMU to replay through", r.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("amdv1", "mixed", "lazy")]
    [InlineData("vtdss", "random", "strict")]
    [InlineData("riscv64", "nvme", "batch:8")]
    public void TheRecordedConfigurationIsIdenticalAndTheTableComparesTheOthers(string format, string workload, string policy)
    {
        string db = Record("rec", workload, policy, format);
        string json = Path.Combine(_dir, "replay.json");
        var r = Ptactors("replay", "--db", db, "--policy", "strict,lazy,batch:32", "--iotlb", "64,1024", "--json", json);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Contains("recorded configuration: identical (every answer as recorded, table_hash ", r.Stdout);
        Assert.Matches(@"\ninvalidation commands +[0-9]+( +[0-9]+){5}\n", r.Stdout);
        Assert.Contains("(- : no DMAs were replayed", r.Stdout);

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.Equal("rec", root.GetProperty("run_id").GetString());
        string recordedHash = root.GetProperty("recorded_table_hash").GetString()!;
        var runs = root.GetProperty("runs").EnumerateArray().ToList();
        Assert.Equal(6, runs.Count);
        Assert.Equal(["strict", "strict", "lazy", "lazy", "batch:32", "batch:32"], runs.Select(x => x.GetProperty("policy").GetString()));
        Assert.Equal([64, 1024, 64, 1024, 64, 1024], runs.Select(x => x.GetProperty("iotlb").GetInt32()));
        foreach (var run in runs)
        {
            // DMA figures are absent, not zero.
            foreach (string key in new[] { "dmas", "iotlb_hit_rate", "stale_in_window", "stale_violations", "use_after_free", "isolation_breaches", "faults" })
                Assert.Equal(JsonValueKind.Null, run.GetProperty(key).ValueKind);
            Assert.Equal(format, run.GetProperty("format").GetString());
            Assert.Equal(4000, run.GetProperty("ops").GetInt64());
        }
        // The recorded policy (any IOTLB size: without DMAs the IOTLB changes nothing) gives the run's tables.
        foreach (var run in runs.Where(x => x.GetProperty("policy").GetString() == policy))
        {
            Assert.True(run.GetProperty("identical").GetBoolean());
            Assert.Equal(recordedHash, run.GetProperty("table_hash").GetString());
            Assert.Equal(0, run.GetProperty("answers_differing").GetInt64());
        }
        long Inv(string p) => runs.First(x => x.GetProperty("policy").GetString() == p).GetProperty("invalidations").GetInt64();
        Assert.True(Inv("strict") > Inv("batch:32"), "strict issues the most invalidation commands");
        Assert.True(Inv("batch:32") > Inv("lazy"), "lazy issues the fewest");
    }

    [Fact]
    public void SynthesizedDmasGiveTheDmaFiguresAndTheSameSeedTheSameOnes()
    {
        string db = Record("s", "nic", "lazy");
        string Json(string name, params string[] extra)
        {
            string path = Path.Combine(_dir, name);
            var r = Ptactors(["replay", "--db", db, "--policy", "strict,lazy", "--json", path, .. extra]);
            Assert.Equal("", r.Stderr);
            Assert.Equal(0, r.Exit);
            if (extra.Length > 0)
            {
                Assert.Contains("(DMAs: synthesized, 3 per mapped 4 KiB page over each mapping's lifetime, seed ", r.Stdout);
                Assert.Matches(@"
IOTLB hit rate +0\.[0-9]{4} +0\.[0-9]{4}
", r.Stdout);
                Assert.Matches(@"
stale hits in window +0 +[1-9][0-9]*
", r.Stdout);
            }
            return path;
        }
        static List<JsonElement> Runs(string path)
            => JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("runs").EnumerateArray().ToList();
        string[] keys = ["dmas", "iotlb_hit_rate", "stale_in_window", "stale_violations", "use_after_free", "isolation_breaches", "faults"];

        var a = Runs(Json("a.json", "--synth-dmas", "3"));
        var b = Runs(Json("b.json", "--synth-dmas", "3", "--seed", "1"));
        var c = Runs(Json("c.json", "--synth-dmas", "3", "--seed", "99"));
        for (int i = 0; i < a.Count; i++)
        {
            foreach (string key in keys)
            {
                Assert.Equal(JsonValueKind.Number, a[i].GetProperty(key).ValueKind);
                Assert.Equal(a[i].GetProperty(key).GetRawText(), b[i].GetProperty(key).GetRawText());   // seed 1 is the default
            }
            Assert.Equal(a[i].GetProperty("dmas").GetInt64(), c[i].GetProperty("dmas").GetInt64());
            Assert.Equal(0, a[i].GetProperty("stale_violations").GetInt64());
        }
        Assert.NotEqual(a[1].GetProperty("iotlb_hit_rate").GetDouble(), c[1].GetProperty("iotlb_hit_rate").GetDouble());
        Assert.True(a[1].GetProperty("identical").GetBoolean());   // lazy is the recorded policy: DMAs change no answer
        Assert.True(a[1].GetProperty("stale_in_window").GetInt64() > 0);
        Assert.Equal(0, a[0].GetProperty("stale_in_window").GetInt64());
    }

    [Fact]
    public void RecordedDmasReplayToTheRunsDmaFigures()
    {
        string db = Path.Combine(_dir, "d.db");
        string simJson = Path.Combine(_dir, "sim.json");
        var sim = Ptactors("simulate", "--db", db, "--run-id", "d", "--workload", "mixed", "--policy", "lazy", "--ops", "4000",
            "--iommus", "2", "--domains", "4", "--devices", "16", "--cpus", "2", "--record-dmas", "--json", simJson);
        Assert.True(sim.Exit == 0, sim.Stderr);
        Assert.Contains(" record-dmas=true", sim.Stdout);
        string json = Path.Combine(_dir, "d.json");
        var r = Ptactors("replay", "--db", db, "--policy", "lazy,strict", "--json", json);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Contains("(DMAs: the run's, as its units translated them)", r.Stdout);
        Assert.Matches(@" operations in 4 domains, [1-9][0-9]* recorded DMAs, read in", r.Stdout);

        using var simDoc = JsonDocument.Parse(File.ReadAllText(simJson));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var lazy = doc.RootElement.GetProperty("runs")[0];
        Assert.True(lazy.GetProperty("identical").GetBoolean());
        foreach (string key in new[] { "dmas", "iotlb_hit_rate", "stale_in_window", "stale_violations", "use_after_free", "isolation_breaches", "faults", "invalidations" })
            Assert.Equal(simDoc.RootElement.GetProperty(key).GetRawText(), lazy.GetProperty(key).GetRawText());
        Assert.True(lazy.GetProperty("dmas").GetInt64() > 0);

        var both = Ptactors("replay", "--db", db, "--synth-dmas", "2");
        Assert.Equal(2, both.Exit);
        Assert.Contains("ptactors replay: --synth-dmas: run 'd' has recorded DMAs (simulate --record-dmas), which are replayed", both.Stderr);
    }

    [Fact]
    public void ADamagedDmaEventIsNamedWithExit2()
    {
        string db = RecordingWithADamagedEvent("x", "x/iommu1.dmas", 1, bytes => { bytes[0] = 9; return bytes; }, "--record-dmas");   // the version byte
        var r = Ptactors("replay", "--db", db);
        Assert.Equal(2, r.Exit);
        Assert.Equal($"ptactors replay: cannot read '{db}': x/iommu1.dmas event 1: PtSerializer: 'unit-dmas' payload has format version 9; this build reads versions 1..1\n",
            r.Stderr.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void ADamagedDomainBatchIsNamedWithExit2()
    {
        string db = RecordingWithADamagedEvent("b", "b/dom0002", 3, bytes => bytes[..(bytes.Length / 2)]);   // cut short
        byte[] before = File.ReadAllBytes(db);
        var r = Ptactors("replay", "--db", db);
        Assert.Equal(2, r.Exit);
        Assert.Equal("", r.Stdout);
        Assert.StartsWith($"ptactors replay: cannot read '{db}': b/dom0002 event 3: PtSerializer: corrupt 'domain-batch' payload at byte ", r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(before, File.ReadAllBytes(db));
    }

    /// <summary>A small mixed recording (run <paramref name="runId"/>) whose event <paramref name="sequenceNr"/> of <paramref name="persistenceId"/> is <paramref name="damage"/>d.</summary>
    private string RecordingWithADamagedEvent(string runId, string persistenceId, long sequenceNr, Func<byte[], byte[]> damage, params string[] extra)
    {
        string db = Path.Combine(_dir, runId + ".db");
        var sim = Ptactors(["simulate", "--db", db, "--run-id", runId, "--workload", "mixed", "--ops", "2000",
            "--iommus", "2", "--domains", "4", "--devices", "16", .. extra]);
        Assert.True(sim.Exit == 0, sim.Stderr);
        EndToEndTests.Checkpoint(db);
        using (var conn = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            conn.Open();
            using var read = conn.CreateCommand();
            read.CommandText = "SELECT message FROM journal WHERE persistence_id = $p AND sequence_number = $n";
            read.Parameters.AddWithValue("$p", persistenceId);
            read.Parameters.AddWithValue("$n", sequenceNr);
            var bytes = (byte[])read.ExecuteScalar()!;
            using var write = conn.CreateCommand();
            write.CommandText = "UPDATE journal SET message = $m WHERE persistence_id = $p AND sequence_number = $n";
            write.Parameters.AddWithValue("$m", damage(bytes));
            write.Parameters.AddWithValue("$p", persistenceId);
            write.Parameters.AddWithValue("$n", sequenceNr);
            Assert.Equal(1, write.ExecuteNonQuery());
        }
        SqliteConnection.ClearAllPools();
        return db;
    }

    [Fact]
    public void BadOptionsAndRunsAreRefusedWithExit2()
    {
        string db = Record("a", "nic", "lazy");
        Record("b", "nvme", "strict");
        var cases = new (string[] Args, string Expected)[]
        {
            (["replay", "--db", db], "holds 2 runs: choose one with --run (a, b)"),
            (["replay", "--db", db, "--run", "c"], "--run 'c': no such run in"),
            (["replay", "--db", db, "--run", "a", "--policy", "strict,bogus"], "bad value 'strict,bogus' for --policy ('bogus': "),
            (["replay", "--db", db, "--run", "a", "--policy", "lazy,lazy"], "('lazy' is listed twice)"),
            (["replay", "--db", db, "--run", "a", "--iotlb", "12"], "bad value '12' for --iotlb"),
            (["replay", "--db", db, "--run", "a", "--format", "arm"], "bad value 'arm' for --format"),
            (["replay", "--db", db, "--run", "a", "--cpus", "0"], "bad value '0' for --cpus"),
            (["replay", "--db", db, "--run", "a", "--iotlb", "8,16,24,32,40,48,56,64,72", "--policy", "strict,lazy,lazy-single,batch:2,batch:3,batch:4,batch:5,batch:6"],
                "--policy x --iotlb make 72 configurations: at most 64"),
            (["replay", "--db", Path.Combine(_dir, "missing.db")], "no such file"),
            (["replay", "--db", db, "--run", "a", "--json", _dir], "it is a directory"),
            (["replay"], "--db FILE or --postgres CONN is required"),
            (["replay", "--db", db, "--run", "a", "--synth-dmas", "0"], "bad value '0' for --synth-dmas (an integer from 1 to 256)"),
            (["replay", "--db", db, "--run", "a", "--synth-dmas", "257"], "bad value '257' for --synth-dmas"),
            (["replay", "--db", db, "--run", "a", "--synth-dmas", "x"], "bad value 'x' for --synth-dmas"),
            (["replay", "--db", db, "--run", "a", "--seed", "3"], "--seed seeds --synth-dmas: give --synth-dmas N too"),
        };
        // The runs' WAL content is checkpointed into the file first: a reader that closes the database last may
        // checkpoint it (the same pages, rewritten), which is SQLite's business, not a change of what is stored.
        EndToEndTests.Checkpoint(db);
        byte[] before = File.ReadAllBytes(db);
        foreach (var (args, expected) in cases)
        {
            var r = Ptactors(args);
            Assert.True(r.Exit == 2, $"{string.Join(' ', args)}: exit {r.Exit}\n{r.Stderr}");
            Assert.Contains(expected, r.Stderr);
            Assert.StartsWith("ptactors replay: ", r.Stderr);
            Assert.DoesNotContain("   at ", r.Stderr);
        }
        SqliteConnection.ClearAllPools();
        Assert.Equal(before, File.ReadAllBytes(db));
    }

    [Fact]
    public void ASavedReplayIsARecordingThatVerifiesAndReplaysIdentically()
    {
        string db = Record("orig", "random", "strict");
        var r = Ptactors("replay", "--db", db, "--policy", "lazy", "--save", "relazy");
        Assert.Equal(0, r.Exit);
        Assert.Matches(@"\nsaved as run relazy \(iommus=2 domains=4 devices=16 workload=random format=x86_64 policy=lazy [^)]* ops=4000 [^)]*\): [0-9]+ events, table_hash [0-9a-f]{64}\n$", r.Stdout);
        var again = Ptactors("replay", "--db", db, "--run", "relazy");
        Assert.Equal(0, again.Exit);
        Assert.Contains("recorded configuration: identical", again.Stdout);
        var verify = Ptactors("verify", "--db", db);
        Assert.Equal(0, verify.Exit);
        Assert.Matches(@"\nrelazy completed domains=4 events=[0-9]+ ops=[0-9]+ table_hash=[0-9a-f]{64} ok\n", "\n" + verify.Stdout);

        var taken = Ptactors("replay", "--db", db, "--run", "orig", "--save", "relazy");
        Assert.Equal(2, taken.Exit);
        Assert.Contains("--save 'relazy': run id 'relazy' is already in the database", taken.Stderr);
        var two = Ptactors("replay", "--db", db, "--run", "orig", "--policy", "lazy,strict", "--save", "x");
        Assert.Equal(2, two.Exit);
        Assert.Contains("--save records one configuration: --policy x --iotlb make 2", two.Stderr);
    }

    [Fact]
    public void AnotherFormatReplaysTheSameOperations()
    {
        string db = Record("x", "nvme", "lazy", "x86_64");
        var r = Ptactors("replay", "--db", db, "--format", "amdv1", "--json", Path.Combine(_dir, "f.json"));
        Assert.Equal(0, r.Exit);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "f.json")));
        var run = Assert.Single(doc.RootElement.GetProperty("runs").EnumerateArray());
        Assert.Equal("amdv1", run.GetProperty("format").GetString());
        Assert.Equal(0, run.GetProperty("maps_refused").GetInt64());
        Assert.Equal(0, run.GetProperty("unmaps_of_nothing").GetInt64());
        Assert.Equal(4000, run.GetProperty("ops").GetInt64());
        Assert.NotEqual(doc.RootElement.GetProperty("recorded_table_hash").GetString(), run.GetProperty("table_hash").GetString());
    }
}
