namespace PtActors.Engine.Hardware;

/// <summary>
/// The one simulated clock, in nanoseconds. Only its owner advances it (in a script, only <c>advance</c>);
/// every timeout is an event on it, never a real timer, so every run is reproducible. Events due at the same
/// time fire in the order they were scheduled.
/// </summary>
public sealed class SimClock
{
    private readonly PriorityQueue<TimerEvent, (ulong Due, long Seq)> _events = new();
    private long _seq;

    /// <summary>Now, in simulated nanoseconds.</summary>
    public ulong NowNs { get; private set; }

    /// <summary>Events scheduled and not yet fired or cancelled.</summary>
    public int PendingEvents => _events.Count;

    /// <summary>Schedules <paramref name="action"/> at <paramref name="dueNs"/> (not before now).</summary>
    public TimerEvent Schedule(ulong dueNs, Action<ulong> action)
    {
        var ev = new TimerEvent(Math.Max(dueNs, NowNs), action);
        _events.Enqueue(ev, (ev.DueNs, _seq++));
        return ev;
    }

    /// <summary>Schedules <paramref name="action"/> <paramref name="delayNs"/> from now.</summary>
    public TimerEvent ScheduleIn(ulong delayNs, Action<ulong> action)
        => Schedule(ulong.MaxValue - NowNs < delayNs ? ulong.MaxValue : NowNs + delayNs, action);

    /// <summary>
    /// Moves the clock forward by <paramref name="deltaNs"/>, firing every event that falls due on the way, each
    /// with the clock set to its due time. Returns how many fired.
    /// </summary>
    public int Advance(ulong deltaNs)
        => AdvanceTo(ulong.MaxValue - NowNs < deltaNs ? ulong.MaxValue : NowNs + deltaNs);

    /// <summary>Moves the clock to <paramref name="targetNs"/> (never backwards), firing what falls due.</summary>
    public int AdvanceTo(ulong targetNs)
    {
        int fired = 0;
        while (_events.TryPeek(out var ev, out var key) && key.Due <= targetNs)
        {
            _events.Dequeue();
            if (ev.Cancelled)
                continue;
            if (key.Due > NowNs)
                NowNs = key.Due;
            ev.Fire();
            fired++;
        }
        if (targetNs > NowNs)
            NowNs = targetNs;
        return fired;
    }
}

/// <summary>One scheduled timeout; cancel it to keep it from firing.</summary>
public sealed class TimerEvent
{
    private readonly Action<ulong> _action;

    internal TimerEvent(ulong dueNs, Action<ulong> action)
    {
        DueNs = dueNs;
        _action = action;
    }

    /// <summary>When it fires.</summary>
    public ulong DueNs { get; }

    /// <summary>True once cancelled.</summary>
    public bool Cancelled { get; private set; }

    /// <summary>Keeps the event from firing.</summary>
    public void Cancel() => Cancelled = true;

    internal void Fire()
    {
        Cancelled = true;
        _action(DueNs);
    }
}
