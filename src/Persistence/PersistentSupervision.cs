using Akka.Actor;
using Akka.Pattern;

namespace PtActors.Persistence;

/// <summary>Supervision for persistent actors, which stop when a journal write fails.</summary>
public static class PersistentSupervision
{
    public static readonly TimeSpan DefaultMinBackoff = TimeSpan.FromMilliseconds(200);
    public static readonly TimeSpan DefaultMaxBackoff = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A backoff supervisor that starts <paramref name="child"/> as <paramref name="childName"/>, forwards
    /// every message to it, and when it stops (a failed Persist stops a persistent actor) starts it
    /// again after minBackoff, doubling up to maxBackoff; the new incarnation recovers from the
    /// journal, so its state is what was written. Messages that arrive while no child runs are dropped.
    /// </summary>
    public static Props Backoff(Props child, string childName, TimeSpan? minBackoff = null, TimeSpan? maxBackoff = null, double randomFactor = 0.2)
    {
        ArgumentNullException.ThrowIfNull(child);
        ArgumentException.ThrowIfNullOrEmpty(childName);
        var min = minBackoff ?? DefaultMinBackoff;
        var max = maxBackoff ?? DefaultMaxBackoff;
        if (max < min) max = min;
        return BackoffSupervisor.Props(Akka.Pattern.Backoff.OnStop(child, childName, min, max, randomFactor, maxNrOfRetries: -1));
    }
}
