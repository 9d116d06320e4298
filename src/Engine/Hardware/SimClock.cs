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
        var ev = new TimerEvent(action);
        Reschedule(ev, dueNs);
        return ev;
    }

    /// <summary>
    /// Arms <paramref name="ev"/> again at <paramref name="dueNs"/> (not before now), exactly as cancelling it and
    /// scheduling a new event with its action would: the earlier arming no longer fires, and among events due at
    /// the same time this one fires in the order of this call. Lets an owner re-arm one timeout without allocating.
    /// </summary>
    internal void Reschedule(TimerEvent ev, ulong dueNs)
    {
        ev.Arm(Math.Max(dueNs, NowNs), _seq);
        _events.Enqueue(ev, (ev.DueNs, _seq++));
    }

    /// <summary><see cref="Reschedule"/> <paramref name="delayNs"/> from now.</summary>
    internal void RescheduleIn(TimerEvent ev, ulong delayNs) => Reschedule(ev, DueIn(delayNs));

    /// <summary>Schedules <paramref name="action"/> <paramref name="delayNs"/> from now.</summary>
    public TimerEvent ScheduleIn(ulong delayNs, Action<ulong> action) => Schedule(DueIn(delayNs), action);

    private ulong DueIn(ulong delayNs) => ulong.MaxValue - NowNs < delayNs ? ulong.MaxValue : NowNs + delayNs;

    /// <summary>
    /// Moves the clock forward by <paramref name="deltaNs"/>, firing every event that falls due on the way, each
    /// with the clock set to its due time. Returns how many fired.
    /// </summary>
    public int Advance(ulong deltaNs) => AdvanceTo(DueIn(deltaNs));

    /// <summary>Moves the clock to <paramref name="targetNs"/> (never backwards), firing what falls due.</summary>
    public int AdvanceTo(ulong targetNs)
    {
        int fired = 0;
        while (_events.TryPeek(out var ev, out var key) && key.Due <= targetNs)
        {
            _events.Dequeue();
            if (ev.Cancelled || ev.Seq != key.Seq)
                continue;   // cancelled, or re-armed since this entry was queued
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

    /// <summary>An event that is not armed (<see cref="Cancelled"/>) until <see cref="SimClock.Reschedule"/> arms it.</summary>
    internal TimerEvent(Action<ulong> action)
    {
        _action = action;
        Cancelled = true;
    }

    /// <summary>When it fires.</summary>
    public ulong DueNs { get; private set; }

    /// <summary>True once cancelled (or fired).</summary>
    public bool Cancelled { get; private set; }

    /// <summary>The clock's sequence number of the latest arming: only the queue entry carrying it may fire.</summary>
    internal long Seq { get; private set; }

    internal void Arm(ulong dueNs, long seq)
    {
        DueNs = dueNs;
        Seq = seq;
        Cancelled = false;
    }

    /// <summary>Keeps the event from firing.</summary>
    public void Cancel() => Cancelled = true;

    internal void Fire()
    {
        Cancelled = true;
        _action(DueNs);
    }
}
