using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Cli.Tests;

/// <summary>
/// Seeded fuzzing of <c>runs</c> and <c>verify</c> with damaged database *files* (the events inside a sound file
/// are JournalCorruptionTests'): truncations (empty, inside the 100-byte header, at and between page boundaries),
/// byte flips in the header, in b-tree page headers and anywhere in a page, pages overwritten with random bytes or
/// zeroed, a database whose last run is still in its <c>-wal</c> with that <c>-wal</c> torn or flipped, a stray
/// garbage <c>-wal</c> or <c>-shm</c>, and damaged <c>--ack-log</c> files. Every case goes through
/// <see cref="Program.Run"/>. Whatever the damage: nothing is thrown, the exit code is 0, 1 or 2, an exit 0 says
/// exactly what the undamaged database says, an exit 2 is one line naming the file and a position (a header byte,
/// a page, an SQLite tree, a byte offset), an exit 1 names the domain and event per failed run, no stack trace,
/// and the files (database, <c>-wal</c>, <c>-shm</c>, ack log) are byte-identical afterwards with nothing new
/// beside them. <c>PTACTORS_FUZZ_DBS</c> sets the number of cases (default 140; docs/reliability.md has a longer run).
/// </summary>
// Alone: it counts the private database copies in the temporary directory before and after, and any other test
// reading a database with a -wal makes such copies meanwhile.
[Collection(nameof(NotInParallel))]
public sealed class DatabaseFileFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int DefaultCases = 140;
    private const int Seed = 0xDBF11E;

    private static readonly Regex Position = new(
        @"(page [0-9]+|row [0-9]+|byte [0-9]+|bytes [0-9]+(-[0-9]+)?|[0-9]+ bytes|event [0-9]+|[Tt]ree [0-9]+|header)", RegexOptions.CultureInvariant);

    private static readonly Regex DomainNamed = new(@" FAILED: dom[0-9]{4}: ", RegexOptions.CultureInvariant);

    private static readonly Regex TypeName = new(@"\b[A-Z][A-Za-z]+Exception\b", RegexOptions.CultureInvariant);

    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-dbfuzz-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private enum Kind
    {
        Truncated,
        HeaderFlip,
        BtreeHeaderFlip,
        PageFlip,
        PageOverwrite,
        PageZeroed,
        WalTorn,
        WalFlip,
        StrayWalOrShm,
        AckLog,
    }

    /// <summary>The undamaged material: a checkpointed database of two runs, the same with its second run only in the -wal, an ack log.</summary>
    private sealed record Originals(byte[] Db, byte[] WalDb, byte[] Wal, byte[] AckLog, int PageSize,
        string RunsOut, string VerifyOut, string WalRunsOut, string WalVerifyOut, string AckVerifyOut);

    private Originals Make()
    {
        string db = Path.Combine(_dir, "good.db");
        string ack = Path.Combine(_dir, "good.ack");
        Simulate(db, "a", "amdv1", ack);
        SqliteConnection.ClearAllPools();
        Assert.False(File.Exists(db + "-wal") && new FileInfo(db + "-wal").Length > 0);
        string walDb = Path.Combine(_dir, "wal.db");
        File.Copy(db, walDb);
        byte[] walMain, wal;
        // A reader holding its snapshot keeps every later commit in the -wal (no checkpoint can pass it).
        using (var reader = new SqliteConnection($"Data Source={walDb};Pooling=False"))
        {
            reader.Open();
            using var tx = reader.BeginTransaction(deferred: true);
            using (var cmd = reader.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "SELECT count(*) FROM journal";
                cmd.ExecuteScalar();
            }
            Simulate(walDb, "b", "x86_64", null);
            SqliteConnection.ClearAllPools();
            walMain = File.ReadAllBytes(walDb);
            wal = File.ReadAllBytes(walDb + "-wal");
        }
        SqliteConnection.ClearAllPools();
        Assert.True(wal.Length > 4096, $"the -wal holds {wal.Length} bytes");
        Simulate(db, "b", "x86_64", null);
        EndToEndTests.Checkpoint(db);
        Assert.False(File.Exists(db + "-wal") && new FileInfo(db + "-wal").Length > 0);
        byte[] main = File.ReadAllBytes(db);
        int pageSize = (main[16] << 8) | main[17];

        var runs = EndToEndTests.Ptactors(["runs", "--db", db]);
        var verify = EndToEndTests.Ptactors(["verify", "--db", db]);
        var ackVerify = EndToEndTests.Ptactors(["verify", "--db", db, "--ack-log", ack]);
        Assert.True(runs.Exit == 0 && verify.Exit == 0 && ackVerify.Exit == 0, runs.Stderr + verify.Stdout + verify.Stderr + ackVerify.Stderr);
        // The -wal copy reads as the same two runs.
        string w = Path.Combine(_dir, "w", "db");
        Directory.CreateDirectory(Path.GetDirectoryName(w)!);
        File.WriteAllBytes(w, walMain);
        File.WriteAllBytes(w + "-wal", wal);
        var walRuns = EndToEndTests.Ptactors(["runs", "--db", w]);
        var walVerify = EndToEndTests.Ptactors(["verify", "--db", w]);
        Assert.True(walRuns.Exit == 0 && walVerify.Exit == 0, walRuns.Stderr + walVerify.Stdout + walVerify.Stderr);
        Assert.Equal(2, walVerify.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(walMain, File.ReadAllBytes(w));
        Assert.Equal(wal, File.ReadAllBytes(w + "-wal"));
        Assert.Equal(2, Directory.GetFiles(Path.GetDirectoryName(w)!).Length);
        Directory.Delete(Path.GetDirectoryName(w)!, recursive: true);
        output.WriteLine($"database {main.Length} bytes ({main.Length / pageSize} pages of {pageSize}), -wal copy {walMain.Length} + {wal.Length} bytes, ack log {new FileInfo(ack).Length} bytes");
        return new Originals(main, walMain, wal, File.ReadAllBytes(ack), pageSize, runs.Stdout, verify.Stdout, walRuns.Stdout, walVerify.Stdout, ackVerify.Stdout);
    }

    private static void Simulate(string db, string runId, string format, string? ackLog)
    {
        string[] args = ["simulate", "--db", db, "--run-id", runId, "--iommus", "1", "--domains", "2", "--devices", "8",
            "--ops", "2000", "--format", format, "--workload", "random"];
        if (ackLog is not null)
            args = [.. args, "--ack-log", ackLog];
        var r = EndToEndTests.Ptactors(args);
        Assert.True(r.Exit == 0, r.Stdout + r.Stderr);
    }

    [Fact]
    public void DamagedDatabaseFilesAreNamedWithAPositionAndNeverChanged()
    {
        int cases = int.TryParse(Environment.GetEnvironmentVariable("PTACTORS_FUZZ_DBS"), out int n) && n > 0 ? n : DefaultCases;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("PTACTORS_FUZZ_SEED"), out int s) ? s : Seed;
        var o = Make();
        var rng = new Random(seed);
        var kinds = Enum.GetValues<Kind>();
        // Damage inside the file is most of it (the pre-check's work); a damaged -wal, a stray -wal or -shm and a
        // damaged ack log always reach the journal layer (an actor system per command) and come less often.
        Kind[] cycle = [Kind.Truncated, Kind.Truncated, Kind.HeaderFlip, Kind.BtreeHeaderFlip, Kind.BtreeHeaderFlip, Kind.PageFlip, Kind.PageFlip,
            Kind.PageFlip, Kind.PageOverwrite, Kind.PageZeroed, Kind.WalTorn, Kind.WalFlip, Kind.StrayWalOrShm, Kind.AckLog];
        var byKind = new Dictionary<(Kind, int), int>();
        int deep = 0;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int leftoverCopies = CopiesInTemp();
        var failures = new List<string>();
        string? log = Environment.GetEnvironmentVariable("PTACTORS_FUZZ_LOG");
        for (int i = 0; i < cases; i++)
        {
            var kind = cycle[i % cycle.Length];
            string dir = Path.Combine(_dir, "c" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Directory.CreateDirectory(dir);
            string db = Path.Combine(dir, "run.db");
            string? ack = null;
            string baseRuns = o.RunsOut, baseVerify = o.VerifyOut;
            string what;
            switch (kind)
            {
                case Kind.AckLog:
                    File.WriteAllBytes(db, o.Db);
                    ack = Path.Combine(dir, "run.ack");
                    File.WriteAllBytes(ack, DamageAckLog(o.AckLog, rng, out what));
                    baseVerify = o.AckVerifyOut;
                    break;
                case Kind.WalTorn or Kind.WalFlip:
                    File.WriteAllBytes(db, o.WalDb);
                    File.WriteAllBytes(db + "-wal", kind == Kind.WalTorn ? Truncate(o.Wal, rng, o.PageSize + 24, out what) : Flip(o.Wal, rng, o.PageSize + 24, out what));
                    baseRuns = o.WalRunsOut;
                    baseVerify = o.WalVerifyOut;
                    break;
                case Kind.StrayWalOrShm:
                    File.WriteAllBytes(db, o.Db);
                    var garbage = new byte[rng.Next(2) == 0 ? rng.Next(1, 200) : rng.Next(1, 40_000)];
                    rng.NextBytes(garbage);
                    if (rng.Next(3) == 0 && garbage.Length >= 32)
                        o.Wal.AsSpan(0, 32).CopyTo(garbage); // a valid -wal header before garbage frames
                    string side = rng.Next(3) switch { 0 => "-wal", 1 => "-shm", _ => "both" };
                    if (side != "-shm")
                        File.WriteAllBytes(db + "-wal", garbage);
                    if (side != "-wal")
                        File.WriteAllBytes(db + "-shm", garbage);
                    what = $"stray {side} of {garbage.Length} bytes";
                    break;
                default:
                    File.WriteAllBytes(db, DamageDb(kind, o.Db, o.PageSize, rng, out what));
                    break;
            }
            var before = Snapshot(dir);
            foreach (bool verify in new[] { false, true })
            {
              try
              {
                if (kind == Kind.AckLog && !verify)
                    continue;
                string[] args = verify ? ["verify", "--db", db] : ["runs", "--db", db];
                if (ack is not null)
                    args = [.. args, "--ack-log", ack];
                var (exit, stdout, stderr) = Run(args, $"case {i} ({kind}: {what})");
                string context = $"case {i} ({kind}: {what}) {args[0]}: exit {exit}\nstdout: {stdout}\nstderr: {stderr}";
                byKind[(kind, exit)] = byKind.GetValueOrDefault((kind, exit)) + 1;
                Assert.True(exit is 0 or 1 or 2, context);
                Assert.DoesNotContain("   at ", stdout + stderr, StringComparison.Ordinal);
                Assert.False(TypeName.IsMatch(stdout + stderr), "an exception type name: " + context);
                if (exit != 2 || !stderr.Contains("--db '", StringComparison.Ordinal))
                    deep++; // it got past the pre-check, into the journal layer
                if (exit == 0)
                {
                    Assert.True(stderr.Length == 0, context);
                    if (kind is Kind.WalTorn or Kind.WalFlip or Kind.AckLog)
                    {
                        // SQLite reads a -wal up to its first frame that fails its checksum (what a crash leaves):
                        // an earlier state of the runs, which must verify. A record cut short ends an ack log.
                        if (verify)
                        {
                            foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                            {
                                Assert.True(line.EndsWith(" ok", StringComparison.Ordinal)
                                    || line.StartsWith($"ack log '{ack}': the last ", StringComparison.Ordinal), context);
                            }
                        }
                    }
                    else
                    {
                        // Harmless damage (free space, a -wal SQLite ignores): verify gives the undamaged file's answer.
                        // runs does not check what the rows say (a changed letter of a configuration): the same runs.
                        if (verify)
                            Assert.True(stdout == baseVerify, context);
                        else
                            Assert.True(stdout.Split('\n').Length == baseRuns.Split('\n').Length, context);
                    }
                }
                else if (exit == 1)
                {
                    Assert.True(verify, context);
                    Assert.True(stderr.Length == 0, context);
                    foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    {
                        if (line.Contains(" FAILED: ", StringComparison.Ordinal))
                        {
                            // Rows that still decode but make a different table, or a journal that lost its last
                            // rows, are named by their domain (the run's end records each one's length and hash).
                            Assert.True(Position.IsMatch(line) || line.Contains("acknowledged operations", StringComparison.Ordinal)
                                || DomainNamed.IsMatch(line), context);
                        }
                    }
                    Assert.Contains(" FAILED: ", stdout, StringComparison.Ordinal);
                }
                else
                {
                    var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                    Assert.True(lines.Length == 1, context);
                    Assert.True(lines[0].Contains($"'{db}'", StringComparison.Ordinal) || (ack is not null && lines[0].Contains($"'{ack}'", StringComparison.Ordinal)), context);
                    Assert.True(Position.IsMatch(lines[0]), "no position: " + context);
                    Assert.True(lines[0].Length <= 400, context);
                }
                var after = Snapshot(dir);
                Assert.True(before.Count == after.Count && before.All(kv => after.TryGetValue(kv.Key, out var h) && h == kv.Value),
                    $"files changed: {string.Join(", ", before.Keys)} -> {string.Join(", ", after.Keys)}: " + context);
              }
              catch (Xunit.Sdk.XunitException e)
              {
                  failures.Add(e.Message);
                  if (log is not null && failures.Count <= 40)
                      File.AppendAllText(log, "FAILURE " + e.Message[..Math.Min(e.Message.Length, 2000)] + "\n");
              }
            }
            Directory.Delete(dir, recursive: true);
            if (log is not null && (i + 1) % 50 == 0)
            {
                // Progress for a long run by hand: what was done so far survives an interrupted run.
                File.AppendAllText(log, $"{i + 1} cases {watch.Elapsed.TotalSeconds:0} s deep={deep} failures={failures.Count} "
                    + string.Join(" ", byKind.OrderBy(kv => kv.Key.Item1).ThenBy(kv => kv.Key.Item2).Select(kv => $"{kv.Key.Item1}:{kv.Key.Item2}={kv.Value}")) + "\n");
            }
        }
        output.WriteLine($"{cases} cases (seed {seed}) in {watch.Elapsed.TotalSeconds:0.0} s; {deep} command runs reached the journal layer; {failures.Count} broken rules");
        foreach (var kind in kinds)
        {
            output.WriteLine($"{kind}: " + string.Join(", ", byKind.Where(kv => kv.Key.Item1 == kind).OrderBy(kv => kv.Key.Item2)
                .Select(kv => $"exit {kv.Key.Item2} x{kv.Value}")));
        }
        Assert.Equal(leftoverCopies, CopiesInTemp());
        Assert.True(failures.Count == 0, $"{failures.Count} broken rules, the first:\n" + string.Join("\n----\n", failures.Take(12)));
    }

    private static (int Exit, string Stdout, string Stderr) Run(string[] args, string context)
    {
        try
        {
            return EndToEndTests.Ptactors(args);
        }
        catch (Exception e)
        {
            Assert.Fail($"{context}: {e.GetType().Name} escaped: {e}");
            throw;
        }
    }

    private static int CopiesInTemp() => Directory.GetDirectories(Path.GetTempPath(), "ptactors-read-*").Length;

    private static Dictionary<string, string> Snapshot(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))), StringComparer.Ordinal);

    private static byte[] DamageDb(Kind kind, byte[] db, int pageSize, Random rng, out string what)
    {
        int pages = db.Length / pageSize;
        int page = rng.Next(pages);
        int start = page * pageSize;
        var copy = (byte[])db.Clone();
        switch (kind)
        {
            case Kind.Truncated:
                return Truncate(db, rng, pageSize, out what);
            case Kind.HeaderFlip:
            {
                int k = 1 + rng.Next(3);
                var at = new List<int>();
                for (int j = 0; j < k; j++)
                {
                    int p = rng.Next(100);
                    copy[p] ^= (byte)(1 << rng.Next(8));
                    at.Add(p);
                }
                what = "header bytes " + string.Join(",", at);
                return copy;
            }
            case Kind.BtreeHeaderFlip:
            {
                int hdr = start + (page == 0 ? 100 : 0);
                int p = hdr + rng.Next(12);
                copy[p] = rng.Next(2) == 0 ? (byte)(copy[p] ^ (1 << rng.Next(8))) : (byte)rng.Next(256);
                what = $"page {page + 1} b-tree header byte {p - start}";
                return copy;
            }
            case Kind.PageFlip:
            {
                int k = 1 + rng.Next(8);
                for (int j = 0; j < k; j++)
                    copy[start + rng.Next(pageSize)] ^= (byte)(1 + rng.Next(255));
                what = $"{k} bytes in page {page + 1}";
                return copy;
            }
            case Kind.PageOverwrite:
                rng.NextBytes(copy.AsSpan(start, pageSize));
                what = $"page {page + 1} random";
                return copy;
            default:
                Array.Clear(copy, start, pageSize);
                what = $"page {page + 1} zeroed";
                return copy;
        }
    }

    private static byte[] Truncate(byte[] data, Random rng, int unit, out string what)
    {
        int units = data.Length / unit;
        int length = rng.Next(6) switch
        {
            0 => 0,
            1 => rng.Next(1, 100),
            2 => unit * rng.Next(units),
            3 => unit * rng.Next(1, units) + rng.Next(-40, 40),
            _ => rng.Next(data.Length),
        };
        length = Math.Clamp(length, 0, data.Length - 1);
        what = $"{length} of {data.Length} bytes";
        return data[..length];
    }

    /// <summary>1-6 changed bytes: in a -wal (<paramref name="frame"/> bytes a frame) in its header, a frame header or anywhere; else anywhere.</summary>
    private static byte[] Flip(byte[] data, Random rng, int frame, out string what)
    {
        var copy = (byte[])data.Clone();
        int k = 1 + rng.Next(6);
        int region = frame == 0 || data.Length < 32 + frame ? 2 : rng.Next(3); // 0: the 32-byte -wal header, 1: a frame header, 2: anywhere
        var at = new List<int>();
        for (int j = 0; j < k; j++)
        {
            int p = region switch
            {
                0 => rng.Next(32),
                1 => 32 + frame * rng.Next((copy.Length - 32) / frame) + rng.Next(24),
                _ => rng.Next(copy.Length),
            };
            copy[p] ^= (byte)(1 + rng.Next(255));
            at.Add(p);
        }
        what = "flips at " + string.Join(",", at);
        return copy;
    }

    private static byte[] DamageAckLog(byte[] log, Random rng, out string what)
    {
        switch (rng.Next(5))
        {
            case 0:
                return Truncate(log, rng, 1, out what);
            case 1:
            case 2:
                var f = Flip(log, rng, 0, out string at);
                what = "ack log " + at;
                return f;
            case 3:
            {
                var g = new byte[rng.Next(1, 2000)];
                rng.NextBytes(g);
                what = $"garbage ack log of {g.Length} bytes";
                return g;
            }
            default:
            {
                var g = new byte[rng.Next(1, 50)];
                rng.NextBytes(g);
                what = $"ack log + {g.Length} garbage bytes";
                return [.. log, .. g];
            }
        }
    }
}

/// <summary>One small checkpointed run database shared by <see cref="DamagedDatabaseFileTests"/>.</summary>
public sealed class GoodDatabase : IDisposable
{
    public GoodDatabase()
    {
        Dir = Directory.CreateTempSubdirectory("ptactors-damaged-").FullName;
        string db = Path.Combine(Dir, "good.db");
        var r = EndToEndTests.Ptactors(["simulate", "--db", db, "--run-id", "good", "--iommus", "1", "--domains", "2", "--devices", "8",
            "--ops", "2000", "--format", "amdv1", "--workload", "random"]);
        Assert.True(r.Exit == 0, r.Stdout + r.Stderr);
        SqliteConnection.ClearAllPools();
        using (var conn = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            cmd.ExecuteNonQuery();
            cmd.CommandText = "SELECT rootpage FROM sqlite_master WHERE name = 'journal'";
            JournalRoot = (long)cmd.ExecuteScalar()!;
        }
        SqliteConnection.ClearAllPools();
        Bytes = File.ReadAllBytes(db);
    }

    public string Dir { get; }

    public byte[] Bytes { get; }

    public long JournalRoot { get; }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary>Hand-made damaged files with the exact message each gives (<see cref="DatabaseFileFuzzTests"/> has the random ones).</summary>
public sealed class DamagedDatabaseFileTests(GoodDatabase good) : IClassFixture<GoodDatabase>
{
    private (string Db, (int Exit, string Stdout, string Stderr) Runs, (int Exit, string Stdout, string Stderr) Verify) Both(string name, byte[] bytes)
    {
        string db = Path.Combine(good.Dir, name);
        File.WriteAllBytes(db, bytes);
        var runs = EndToEndTests.Ptactors(["runs", "--db", db]);
        var verify = EndToEndTests.Ptactors(["verify", "--db", db]);
        Assert.Equal(bytes, File.ReadAllBytes(db));
        Assert.False(File.Exists(db + "-wal") || File.Exists(db + "-shm"));
        Assert.Equal("", runs.Stdout + verify.Stdout);
        Assert.Equal(2, runs.Exit);
        Assert.Equal(2, verify.Exit);
        return (db, runs, verify);
    }

    [Fact]
    public void ATruncatedFileNamesThePageItEndsIn()
    {
        int pages = good.Bytes.Length / 4096;
        var (db, runs, verify) = Both("truncated.db", good.Bytes[..(3 * 4096 + 100)]);
        string why = $"truncated: the file is 12388 bytes, its header says {pages} pages of 4096 bytes ({pages * 4096} bytes); it ends in page 4";
        Assert.Equal($"ptactors runs: --db '{db}': {why}\n", runs.Stderr);
        Assert.Equal($"ptactors verify: --db '{db}': {why}\n", verify.Stderr);

        (db, runs, _) = Both("header-only.db", good.Bytes[..60]);
        Assert.Equal($"ptactors runs: --db '{db}': truncated: the file is 60 bytes, shorter than the 100-byte SQLite header\n", runs.Stderr);
    }

    [Fact]
    public void AZeroedHeaderOrGarbageIsNotAnSqliteDatabase()
    {
        var zeroed = (byte[])good.Bytes.Clone();
        Array.Clear(zeroed, 0, 100);
        var (db, runs, _) = Both("zeroed.db", zeroed);
        Assert.Equal($"ptactors runs: --db '{db}': not a readable SQLite database (bytes 0-15 are not the SQLite header string 'SQLite format 3')\n", runs.Stderr);

        var garbage = new byte[10_000];
        new Random(7).NextBytes(garbage);
        (db, _, var verify) = Both("garbage.db", garbage);
        Assert.Equal($"ptactors verify: --db '{db}': not a readable SQLite database (bytes 0-15 are not the SQLite header string 'SQLite format 3')\n", verify.Stderr);

        var pageSize = (byte[])good.Bytes.Clone();
        pageSize[16] = 0x12;
        (db, runs, _) = Both("page-size.db", pageSize);
        Assert.Equal($"ptactors runs: --db '{db}': damaged header: bytes 16-17 give page size 4608, not a power of two from 512 to 65536\n", runs.Stderr);
    }

    [Fact]
    public void ADamagedBtreePageIsNamedByQuickCheck()
    {
        // The journal's root page says it is of b-tree page type 0 (no such type).
        var flipped = (byte[])good.Bytes.Clone();
        flipped[(good.JournalRoot - 1) * 4096] = 0;
        var (db, runs, verify) = Both("btree.db", flipped);
        long root = good.JournalRoot;
        Assert.StartsWith($"ptactors runs: --db '{db}': damaged: PRAGMA quick_check reports "
            + $"'Tree {root} page {root}: btreeInitPage() returns error code 11 (tree {root} is journal)'; 'Page ", runs.Stderr, StringComparison.Ordinal);
        Assert.Equal(runs.Stderr.Replace("runs:", "verify:", StringComparison.Ordinal), verify.Stderr);
    }

    [Fact]
    public void AGarbageAckLogIsNamedWithItsByte()
    {
        string db = Path.Combine(good.Dir, "ack.db");
        File.WriteAllBytes(db, good.Bytes);
        string ack = Path.Combine(good.Dir, "garbage.ack");
        File.WriteAllBytes(ack, [5, 1, 2, 3]);
        var r = EndToEndTests.Ptactors(["verify", "--db", db, "--ack-log", ack]);
        Assert.Equal(2, r.Exit);
        Assert.Equal($"ptactors verify: --ack-log '{ack}': byte 0: a record before any run section (not an ack log?)\n", r.Stderr);

        File.WriteAllBytes(ack, [0, 1, (byte)'x', 1, 1, 2]);
        r = EndToEndTests.Ptactors(["verify", "--db", db, "--ack-log", ack]);
        Assert.Equal(1, r.Exit);
        Assert.Contains($"ack log '{ack}': byte 0: run 'x' is not in the database (1 operations acknowledged) FAILED\n", r.Stdout, StringComparison.Ordinal);
        Assert.Equal([0, 1, (byte)'x', 1, 1, 2], File.ReadAllBytes(ack));
    }
}

/// <summary>Test classes that must not run while any other runs.</summary>
[CollectionDefinition(nameof(NotInParallel), DisableParallelization = true)]
public sealed class NotInParallel;
