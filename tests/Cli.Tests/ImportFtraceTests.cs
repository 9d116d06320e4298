using Microsoft.Data.Sqlite;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary><c>ptactors import-ftrace</c> end to end: traces become recordings that runs, verify and replay take like any other.</summary>
public sealed class ImportFtraceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-ftrace-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private static (int Exit, string Stdout, string Stderr) Ptactors(params string[] args) => EndToEndTests.Ptactors(args);

    private static string Example(string name) => Path.Combine(AppContext.BaseDirectory, "Traces", name);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Theory]
    [InlineData("nvme-nic.trace", 3, 1)]
    [InlineData("nvme-nic.report", 3, 1)]
    [InlineData("legacy-5.10.trace", 1, 0)]   // the pre-2022 layout, no dma events: one unattributed device, no fault
    public void AnExampleTraceBecomesARecordingThatVerifiesAndReplaysIdentically(string trace, int devices, int faults)
    {
        string db = Path.Combine(_dir, "t.db");
        var r = Ptactors("import-ftrace", Example(trace), "--db", db, "--run-id", "t");
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Contains($"recorded as run t in {db}: {devices} devices (one domain each), x86_64, policy lazy, table_hash ", r.Stdout);
        Assert.Matches(@"\nimported " + (46 + faults) + @" ops \(25 maps, 21 unmaps, " + faults + @" faults\), skipped [0-9]+ lines, malformed 0 lines, unmapped_size mismatches 0\n$", r.Stdout);

        var runs = Ptactors("runs", "--db", db);
        Assert.Matches(@"\nt +\S+ \S+ +completed +46 +iommus=1 domains=" + devices + " devices=" + devices + " workload=ftrace ", runs.Stdout);
        var verify = Ptactors("verify", "--db", db);
        Assert.Equal(0, verify.Exit);
        Assert.Matches(@"^t completed domains=" + devices + @" events=[0-9]+ ops=46 table_hash=[0-9a-f]{64} ok\n$", verify.Stdout);
        var replay = Ptactors("replay", "--db", db, "--policy", "strict,lazy");
        Assert.Equal(0, replay.Exit);
        Assert.Contains("recorded configuration: identical", replay.Stdout);

        // A saved replay of the import keeps the trace's bound (its operation count), not simulate's default.
        string ops = System.Text.RegularExpressions.Regex.Match(runs.Stdout, @"\nt .* (ops=[0-9]+) ").Groups[1].Value;
        Assert.StartsWith("ops=", ops);
        Assert.Equal(0, Ptactors("replay", "--db", db, "--run", "t", "--policy", "strict", "--save", "t-strict").Exit);
        var saved = Ptactors("runs", "--db", db);
        Assert.Matches(@"\nt-strict .* policy=strict .*" + ops + " ", saved.Stdout);
    }

    private const string Header = "# tracer: nop\n#\n";

    [Fact]
    public void MalformedLinesAreNamedAndSkippedAndUnmappedSizeMismatchesListed()
    {
        // A 2 MiB map, then an unmap of its first 4 KiB: iommupt never splits a large page, so the engine unmaps
        // the whole 2 MiB; this trace says 4096 (a kernel that split it), which is a mismatch to report.
        string trace = Write("m.trace", Header +
            "  fio-1 [000] .....   1.000000: map: IOMMU: iova=0x0000000040000000 - 0x0000000040200000 paddr=0x0000000080000000 size=2097152\n" +
            "  fio-1 [000] .....   1.000001: map: IOMMU: iova=0xzz - 0x0000000040200000 paddr=0x0000000080000000 size=2097152\n" +
            "  fio-1 [000] .....   1.000002: unmap: IOMMU: iova=0x0000000040000000 - 0x0000000040001000 size=4096 unmapped_size=4096\n" +
            "garbage\n" +
            "  fio-1 [000] .....   1.000003: sched_switch: prev_comm=fio\n");
        string db = Path.Combine(_dir, "m.db");
        var r = Ptactors("import-ftrace", trace, "--db", db, "--run-id", "m");
        Assert.Equal(0, r.Exit);
        var errors = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, errors.Length);
        Assert.StartsWith($"{trace}:4: iova", errors[0]);
        Assert.StartsWith($"{trace}:6: ", errors[1]);
        Assert.Contains($"{trace}:5: unmap iova=0x40000000 size=4096: traced unmapped_size=4096, engine unmapped 2097152", r.Stdout);
        Assert.EndsWith("imported 2 ops (1 maps, 1 unmaps, 0 faults), skipped 3 lines, malformed 2 lines, unmapped_size mismatches 1\n", r.Stdout);
        Assert.Equal(0, Ptactors("verify", "--db", db).Exit);
    }

    [Fact]
    public void BadInputsAreRefusedAndWriteNothing()
    {
        string db = Path.Combine(_dir, "b.db");
        Assert.Equal(0, Ptactors("import-ftrace", Example("nvme-nic.trace"), "--db", db, "--run-id", "one").Exit);
        EndToEndTests.Checkpoint(db);
        byte[] before = File.ReadAllBytes(db);
        string notDb = Write("text.db", "not a database");
        var cases = new (string[] Args, string Expected)[]
        {
            (["import-ftrace", Example("nvme-nic.trace"), "--db", db, "--run-id", "one"], "run id 'one' is already in the database"),
            (["import-ftrace", Path.Combine(_dir, "missing.trace"), "--db", db], "missing.trace"),
            (["import-ftrace", _dir, "--db", db], "it is a directory"),
            (["import-ftrace", Example("nvme-nic.trace"), "--db", notDb], "--db '" + notDb + "'"),
            (["import-ftrace", Example("nvme-nic.trace"), "--db", db, "--policy", "sometimes"], "bad value 'sometimes' for --policy"),
            (["import-ftrace", Example("nvme-nic.trace"), "--db", db, "--run-id", "a/b"], "bad value 'a/b' for --run-id"),
            (["import-ftrace"], "Required argument missing"),
        };
        foreach (var (args, expected) in cases)
        {
            var r = Ptactors(args);
            Assert.True(r.Exit == 2, $"{string.Join(' ', args)}: exit {r.Exit}\n{r.Stderr}");
            Assert.Contains(expected, r.Stderr);
            Assert.StartsWith("ptactors import-ftrace: ", r.Stderr);
            Assert.DoesNotContain("   at ", r.Stderr);
        }
        SqliteConnection.ClearAllPools();
        Assert.Equal(before, File.ReadAllBytes(db));
        Assert.Equal("not a database", File.ReadAllText(notDb));
    }
}
