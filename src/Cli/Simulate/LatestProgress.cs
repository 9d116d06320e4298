using PtActors.Actors;

namespace PtActors.Cli.Simulate;

/// <summary>
/// Keeps the runner's latest <see cref="SimulationProgress"/> (reported from any thread) for the display to poll;
/// older reports are simply replaced.
/// </summary>
internal sealed class LatestProgress : IProgress<SimulationProgress>
{
    private readonly Lock _lock = new();
    private SimulationProgress _latest;
    private long _version;

    public void Report(SimulationProgress value)
    {
        lock (_lock)
        {
            _latest = value;
            _version++;
        }
    }

    /// <summary>The latest report if one arrived after version <paramref name="seen"/> (which it then advances).</summary>
    public bool TryGetNewer(ref long seen, out SimulationProgress progress)
    {
        lock (_lock)
        {
            progress = _latest;
            if (_version == seen)
                return false;
            seen = _version;
            return true;
        }
    }
}
