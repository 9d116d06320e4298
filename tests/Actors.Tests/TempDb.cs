using PtActors.Persistence;

namespace PtActors.Actors.Tests;

/// <summary>A SQLite file in a fresh temporary folder, deleted afterwards.</summary>
internal sealed class TempDb : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ptactors-rec-" + Guid.NewGuid().ToString("N"));

    public TempDb() => Directory.CreateDirectory(_dir);

    public PersistenceBackend Backend => PersistenceBackend.Sqlite(Path.Combine(_dir, "runs.db"));

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }
}
