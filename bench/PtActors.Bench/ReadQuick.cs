using System.Diagnostics;
using Akka.Configuration;
using PtActors.Persistence;

namespace PtActors.Bench;

/// <summary>
/// Times reading a recording's domain journals (<c>-- read DB RUN DOMAINS [PARALLEL] [BUFFER] [ISOLATION]</c>): the start of
/// the SQL read journal and its first query, then three rounds of reading every domain's journal through
/// Akka.Persistence.Query (<see cref="Recordings.ReadBatchesAsync"/>, <c>PARALLEL</c> queries at a time,
/// <c>max-buffer-size = BUFFER</c>, <c>read-isolation-level = ISOLATION</c> if given, else config/persistence-sqlite.conf's), after three rounds of a baseline: the same rows read with one plain SQLite
/// query and decoded with the same codecs (what the read journal's own cost is measured against).
/// </summary>
public static class ReadQuick
{
    /// <summary>The payloads of run <paramref name="run"/>'s domain journals, read with one plain SQLite query, in journal order.</summary>
    private static IEnumerable<byte[]> DomainRows(string db, string run)
    {
        using var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Mode=ReadOnly");
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT message FROM journal WHERE persistence_id LIKE $run || '/dom%' ORDER BY persistence_id, sequence_number";
        cmd.Parameters.AddWithValue("$run", run);
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
            yield return (byte[])reader.GetValue(0);
    }

    public static void Run(string db, string run, int domains, int parallel, int buffer, string? isolation, TextWriter output)
    {
        string config = $"akka.persistence.query.journal.sql.max-buffer-size = {buffer}";
        if (isolation is not null)
            config += $"\nakka.persistence.query.journal.sql.read-isolation-level = {isolation}";
        var extra = ConfigurationFactory.ParseString(config);
        var system = PersistentActorSystem.Create("read", PersistenceBackend.Sqlite(db), extra);
        try
        {
            var t = Stopwatch.StartNew();
            var journal = Akka.Persistence.Query.PersistenceQuery.Get(system)
                .ReadJournalFor<Akka.Persistence.Sql.Query.SqlReadJournal>(PersistenceConfig.SqlReadJournalId);
            output.WriteLine($"read journal started in {t.Elapsed.TotalSeconds:F2} s");
            t.Restart();
            Recordings.ReadBatchesAsync(system, $"{run}/dom0000").GetAwaiter().GetResult();
            output.WriteLine($"first query (one domain) in {t.Elapsed.TotalSeconds:F2} s");

            var registry = new PtActors.Persistence.Serialization.PtCodecRegistry();
            registry.Register(new PtActors.Persistence.Domains.DomainCodecs());
            registry.Freeze();
            for (int round = 0; round < 3; round++)
            {
                var raw = Stopwatch.StartNew();
                long rows = 0, bytes = 0, ops = 0;
                foreach (var message in DomainRows(db, run))
                {
                    bytes += message.Length;
                    rows++;
                    ops += ((PtActors.Engine.Dma.DomainBatch)registry.Deserialize(message, "domain-batch")).Ops.Length;
                }
                output.WriteLine($"baseline round {round}: {rows} rows, {bytes} bytes, {ops} ops read and decoded in {raw.Elapsed.TotalSeconds:F2} s (one thread)");
            }
            // The codec alone: every row held in memory, decoded again and again (no SQLite, no journal).
            var rowsInMemory = DomainRows(db, run).ToList();
            for (int round = 0; round < 3; round++)
            {
                var sw = Stopwatch.StartNew();
                long ops = 0;
                foreach (var message in rowsInMemory)
                    ops += ((PtActors.Engine.Dma.DomainBatch)registry.Deserialize(message, "domain-batch")).Ops.Length;
                output.WriteLine($"decode round {round}: {ops} ops decoded in {sw.Elapsed.TotalSeconds:F3} s ({sw.Elapsed.TotalNanoseconds / ops:F0} ns an operation, one thread)");
            }
            for (int round = 0; round < 3; round++)
            {
                var sw = Stopwatch.StartNew();
                long events = 0, ops = 0;
                Parallel.For(0, domains, new ParallelOptions { MaxDegreeOfParallelism = parallel }, d =>
                {
                    var list = Recordings.ReadBatchesAsync(system, $"{run}/dom{d:D4}").GetAwaiter().GetResult();
                    long o = 0;
                    foreach (var b in list)
                        o += b.Ops.Length;
                    Interlocked.Add(ref events, list.Count);
                    Interlocked.Add(ref ops, o);
                });
                output.WriteLine($"query round {round}: {events} events, {ops} ops in {sw.Elapsed.TotalSeconds:F2} s ({ops / sw.Elapsed.TotalSeconds / 1e6:F2} M ops/s), {parallel} queries at a time, max-buffer-size {buffer}");
            }
        }
        finally
        {
            system.Terminate().Wait();
        }
    }
}
