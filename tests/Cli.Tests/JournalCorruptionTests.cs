using Microsoft.Data.Sqlite;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// <c>verify</c> on databases whose journal was damaged after the run: an event of an unknown format version, a
/// truncated payload, trailing bytes, an unknown manifest, random bytes. Each is one line naming the domain and the
/// event (exit 1), never a stack trace or a hang, and the database's bytes are left as they were.
/// </summary>
public sealed class JournalCorruptionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-corrupt-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private string MakeRun(params string[] extra)
    {
        string db = Path.Combine(_dir, "good.db");
        var r = EndToEndTests.Ptactors(["simulate", "--db", db, "--run-id", "good", "--iommus", "2", "--domains", "4", "--devices", "16",
            "--ops", "3000", "--format", "amdv1", "--workload", "random", .. extra]);
        Assert.Equal(0, r.Exit);
        SqliteConnection.ClearAllPools();
        using var conn = Open(db);
        Execute(conn, "PRAGMA wal_checkpoint(TRUNCATE)");
        return db;
    }

    private static SqliteConnection Open(string db)
    {
        var conn = new SqliteConnection($"Data Source={db};Pooling=False");
        conn.Open();
        return conn;
    }

    private static void Execute(SqliteConnection conn, string sql, params (string Name, object Value)[] args)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
            cmd.Parameters.AddWithValue(name, value);
        cmd.ExecuteNonQuery();
    }

    /// <summary>A copy of <paramref name="db"/> whose event 2 of dom0001 has its payload (or manifest) changed.</summary>
    private string Damaged(string db, string name, Func<byte[], byte[]>? payload, string? manifest = null)
    {
        string copy = Path.Combine(_dir, name + ".db");
        File.Copy(db, copy);
        using (var conn = Open(copy))
        {
            using var read = conn.CreateCommand();
            read.CommandText = "SELECT message FROM journal WHERE persistence_id = 'good/dom0001' AND sequence_number = 2";
            var bytes = (byte[])read.ExecuteScalar()!;
            if (payload is not null)
                Execute(conn, "UPDATE journal SET message = $m WHERE persistence_id = 'good/dom0001' AND sequence_number = 2", ("$m", payload(bytes)));
            if (manifest is not null)
                Execute(conn, "UPDATE journal SET manifest = $m WHERE persistence_id = 'good/dom0001' AND sequence_number = 2", ("$m", manifest));
            Execute(conn, "PRAGMA journal_mode=WAL");
        }
        SqliteConnection.ClearAllPools();
        return copy;
    }

    [Fact]
    public void EachDamagedEventIsNamedAndNothingIsWritten()
    {
        string good = MakeRun();
        var rng = new Random(15);
        var cases = new List<(string Name, Func<byte[], byte[]>? Payload, string? Manifest, string Expected)>
        {
            ("version0", b => [0, .. b[1..]], null, "format version 0"),
            ("version5", b => [5, .. b[1..]], null, "format version 5"),
            ("version255", b => [255, .. b[1..]], null, "format version 255"),
            ("truncated", b => b[..(b.Length / 2)], null, "corrupt 'domain-batch' payload at byte"),
            ("trailing", b => [.. b, 0], null, "trailing"),
            ("empty", _ => [], null, "domain-batch"),
            ("manifest", null, "domain-bogus", "domain-bogus"),
        };
        for (int i = 0; i < 12; i++)
        {
            int seed = rng.Next();
            cases.Add(($"random{i}", b =>
            {
                var r = new Random(seed);
                var copy = (byte[])b.Clone();
                for (int k = 1 + r.Next(8); k > 0; k--)
                    copy[r.Next(copy.Length)] = (byte)r.Next(256);
                return copy;
            }, null, ""));
        }

        foreach (var (name, payload, manifest, expected) in cases)
        {
            string db = Damaged(good, name, payload, manifest);
            byte[] before = File.ReadAllBytes(db);
            var r = EndToEndTests.Ptactors(["verify", "--db", db]);
            SqliteConnection.ClearAllPools();
            Assert.DoesNotContain("   at ", r.Stdout + r.Stderr, StringComparison.Ordinal);
            Assert.Equal(before, File.ReadAllBytes(db));
            if (expected.Length == 0 && r.Exit == 0)
                continue; // random bytes that still decode to the same batch (e.g. inside the digest's slack)
            Assert.True(r.Exit == 1, $"{name}: exit {r.Exit}\n{r.Stdout}{r.Stderr}");
            Assert.Equal("", r.Stderr);
            var line = Assert.Single(r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("good completed domains=4 ", line, StringComparison.Ordinal);
            Assert.Contains(" FAILED: dom0001: ", line, StringComparison.Ordinal);
            if (expected.Length > 0)
            {
                Assert.Contains("good/dom0001 cannot be recovered at event 2: ", line, StringComparison.Ordinal);
                Assert.Contains(expected, line, StringComparison.Ordinal);
                Assert.Contains(" table_hash=- ", line, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void AJournalThatLostItsLastEventIsNamedByItsDomain()
    {
        string good = MakeRun();
        string db = Path.Combine(_dir, "lost.db");
        File.Copy(good, db);
        long last;
        using (var conn = Open(db))
        {
            using var read = conn.CreateCommand();
            read.CommandText = "SELECT MAX(sequence_number) FROM journal WHERE persistence_id = 'good/dom0002'";
            last = (long)read.ExecuteScalar()!;
            Execute(conn, "DELETE FROM journal WHERE persistence_id = 'good/dom0002' AND sequence_number = $n", ("$n", last));
        }
        SqliteConnection.ClearAllPools();

        var r = EndToEndTests.Ptactors(["verify", "--db", db]);
        SqliteConnection.ClearAllPools();
        Assert.True(r.Exit == 1, r.Stdout + r.Stderr);
        var line = Assert.Single(r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains($" FAILED: dom0002: its journal holds {last - 1} events (last sequence number {last - 1}); the run wrote {last}", line, StringComparison.Ordinal);
        Assert.DoesNotContain("the recovered table_hash", line, StringComparison.Ordinal);
    }

    [Fact]
    public void AChangedEventThatStillDecodesIsNamedByItsDomain()
    {
        // The hardware's dirty-bit writes journalled with a batch, dropped: every answer stays the same (nic never
        // reads the dirty bits back). The table memory differs at the end unless the PTEs were unmapped since, so
        // the latest batches with writes are tried, one at a time, until verify sees the change.
        string good = Path.Combine(_dir, "dirty.db");
        var run = EndToEndTests.Ptactors(["simulate", "--db", good, "--run-id", "good", "--iommus", "1", "--domains", "3", "--devices", "6",
            "--ops", "3000", "--format", "amdv1", "--workload", "nic"]);
        Assert.Equal(0, run.Exit);
        SqliteConnection.ClearAllPools();
        var registry = new PtActors.Persistence.Serialization.PtCodecRegistry();
        registry.Register(new PtActors.Persistence.Domains.DomainCodecs());
        registry.Freeze();
        var candidates = new List<(string Pid, long Seq, byte[] Changed)>();
        using (var conn = Open(good))
        {
            Execute(conn, "PRAGMA wal_checkpoint(TRUNCATE)");
            using var read = conn.CreateCommand();
            read.CommandText = "SELECT persistence_id, sequence_number, message FROM journal WHERE manifest = 'domain-batch' ORDER BY sequence_number DESC";
            using var reader = read.ExecuteReader();
            while (reader.Read() && candidates.Count < 12)
            {
                var batch = (PtActors.Engine.Dma.DomainBatch)registry.Deserialize((byte[])reader.GetValue(2), "domain-batch");
                if (batch.HardwareWrites.Length > 0)
                    candidates.Add((reader.GetString(0), reader.GetInt64(1), registry.Serialize(batch with { HardwareWrites = [] })));
            }
        }
        SqliteConnection.ClearAllPools();
        Assert.NotEmpty(candidates);

        int seen = 0;
        foreach (var (pid, seq, changed) in candidates)
        {
            string db = Path.Combine(_dir, $"dirty-{pid.Replace('/', '-')}-{seq}.db");
            File.Copy(good, db);
            using (var conn = Open(db))
                Execute(conn, "UPDATE journal SET message = $m WHERE persistence_id = $p AND sequence_number = $n", ("$m", changed), ("$p", pid), ("$n", seq));
            SqliteConnection.ClearAllPools();
            var r = EndToEndTests.Ptactors(["verify", "--db", db]);
            SqliteConnection.ClearAllPools();
            if (r.Exit == 0)
                continue; // the bits were cleared by a later unmap: the run's end state is unchanged
            Assert.True(r.Exit == 1, r.Stdout + r.Stderr);
            var line = Assert.Single(r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains($" FAILED: {pid["good/".Length..]}: ", line, StringComparison.Ordinal);
            Assert.Contains(" differs from ", line, StringComparison.Ordinal);
            Assert.DoesNotContain("the recovered table_hash", line, StringComparison.Ordinal);
            seen++;
        }
        Assert.True(seen > 0, $"none of {candidates.Count} changed batches changed the run's final tables");
    }

    [Fact]
    public void TheDmaJournalsOfARecordDmasRunAreRowsOfTheRun()
    {
        // A run that does not verify lists the journal rows out of place; a --record-dmas run's DMA journals are not.
        string good = MakeRun("--record-dmas");
        using (var conn = Open(good))
        {
            using var count = conn.CreateCommand();
            count.CommandText = "SELECT count(*) FROM journal WHERE persistence_id IN ('good/iommu0.dmas', 'good/iommu1.dmas')";
            Assert.True((long)count.ExecuteScalar()! > 0);
        }
        SqliteConnection.ClearAllPools();
        var ok = EndToEndTests.Ptactors(["verify", "--db", good]);
        Assert.Equal(0, ok.Exit);
        string db = Damaged(good, "gap", null);
        using (var conn = Open(db))
            Execute(conn, "UPDATE journal SET sequence_number = 99 WHERE persistence_id = 'good/dom0001' AND sequence_number = 2");
        SqliteConnection.ClearAllPools();
        var r = EndToEndTests.Ptactors(["verify", "--db", db]);
        Assert.Equal(1, r.Exit);
        Assert.True(r.Stdout.Contains("good/dom0001 event 3 follows event 1", StringComparison.Ordinal), r.Stdout);
        Assert.DoesNotContain(".dmas", r.Stdout);
    }

    [Fact]
    public void VerifyReadsTheDmaJournalsAndNamesADamagedOne()
    {
        string good = MakeRun("--record-dmas");
        long recorded;
        using (var conn = Open(good))
        {
            // Every DMA event decodes with the codecs replay reads them with; verify counts the same DMAs.
            var registry = new PtActors.Persistence.Serialization.PtCodecRegistry();
            registry.Register(new PtActors.Persistence.Units.UnitCodecs());
            registry.Freeze();
            using var read = conn.CreateCommand();
            read.CommandText = "SELECT message FROM journal WHERE persistence_id LIKE 'good/iommu%.dmas'";
            using var reader = read.ExecuteReader();
            recorded = 0;
            while (reader.Read())
                recorded += ((PtActors.Engine.Replay.WindowDmas)registry.Deserialize((byte[])reader.GetValue(0), "unit-dmas")).Items.Length;
        }
        SqliteConnection.ClearAllPools();
        Assert.True(recorded > 0);
        var ok = EndToEndTests.Ptactors(["verify", "--db", good]);
        Assert.True(ok.Exit == 0, ok.Stdout + ok.Stderr);
        Assert.Matches($" ops=[0-9]+ dmas={recorded} table_hash=[0-9a-f]+ ok", ok.Stdout);

        string db = Path.Combine(_dir, "dmas.db");
        File.Copy(good, db);
        using (var conn = Open(db))
        {
            using var read = conn.CreateCommand();
            read.CommandText = "SELECT message FROM journal WHERE persistence_id = 'good/iommu1.dmas' AND sequence_number = 2";
            var bytes = (byte[])read.ExecuteScalar()!;
            bytes[0] = 9;   // the version byte
            Execute(conn, "UPDATE journal SET message = $m WHERE persistence_id = 'good/iommu1.dmas' AND sequence_number = 2", ("$m", bytes));
        }
        SqliteConnection.ClearAllPools();
        byte[] before = File.ReadAllBytes(db);
        var r = EndToEndTests.Ptactors(["verify", "--db", db]);
        SqliteConnection.ClearAllPools();
        Assert.True(r.Exit == 1, r.Stdout + r.Stderr);
        Assert.Equal("", r.Stderr);
        var line = Assert.Single(r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(" FAILED: iommu1: its DMA journal cannot be read: good/iommu1.dmas event 2: PtSerializer: 'unit-dmas' payload has format version 9", line, StringComparison.Ordinal);
        Assert.DoesNotContain(" dmas=", line, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(db));
    }
}
