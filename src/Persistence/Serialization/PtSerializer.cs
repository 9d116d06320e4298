using Akka.Actor;
using Akka.Configuration;
using Akka.Serialization;
using PtActors.Persistence.Runs;

namespace PtActors.Persistence.Serialization;

/// <summary>
/// The Akka serializer for everything PtActors persists: stable short string manifests from a
/// <see cref="PtCodecRegistry"/>, a version byte first in every payload, compact binary fields,
/// no CLR type names. Bound to <see cref="IPtPersistable"/> by config/persistence-serialization.conf;
/// codec sets come from <c>akka.actor.serialization-settings.ptb.codec-sets</c> (the built-in run
/// codecs are always registered).
/// </summary>
public sealed class PtSerializer : SerializerWithStringManifest
{
    /// <summary>The serializer id stored with every row; never change it.</summary>
    public const int Id = 4711;

    /// <summary>The name the HOCON gives this serializer.</summary>
    public const string Name = "ptb";

    public PtSerializer(ExtendedActorSystem system)
        : this(system, Config.Empty)
    {
    }

    public PtSerializer(ExtendedActorSystem system, Config settings)
        : base(system)
    {
        Registry = BuildRegistry(settings);
    }

    /// <summary>The frozen codec table this serializer uses.</summary>
    public PtCodecRegistry Registry { get; }

    public override int Identifier => Id;

    public override byte[] ToBinary(object obj) => Registry.Serialize(obj);

    public override object FromBinary(byte[] bytes, string manifest) => Registry.Deserialize(bytes, manifest, system);

    public override string Manifest(object o) => Registry.ManifestFor(o);

    /// <summary>
    /// The registry for a serializer's settings: the built-in codec sets, then each set named under
    /// <c>codec-sets</c> (a HOCON object of name = "Type, Assembly"; objects merge, so each module adds
    /// its own key). Throws <see cref="ConfigurationException"/> for a set that cannot be loaded.
    /// </summary>
    public static PtCodecRegistry BuildRegistry(Config? settings)
    {
        var registry = new PtCodecRegistry();
        var seen = new HashSet<Type>();
        foreach (var set in BuiltInSets())
        {
            seen.Add(set.GetType());
            registry.Register(set);
        }
        if (settings is not null && !settings.IsEmpty && settings.HasPath("codec-sets"))
        {
            foreach (var (key, value) in settings.GetConfig("codec-sets").AsEnumerable().OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                string typeName = value.GetString();
                var type = Type.GetType(typeName, throwOnError: false)
                    ?? throw new ConfigurationException($"PtSerializer: codec set '{key}' names type '{typeName}', which cannot be loaded");
                if (!typeof(IPtCodecSet).IsAssignableFrom(type))
                    throw new ConfigurationException($"PtSerializer: codec set '{key}' ({typeName}) does not implement {nameof(IPtCodecSet)}");
                if (!seen.Add(type)) continue;
                var set = (IPtCodecSet)(Activator.CreateInstance(type)
                    ?? throw new ConfigurationException($"PtSerializer: cannot create codec set '{key}' ({typeName})"));
                registry.Register(set);
            }
        }
        return registry.Freeze();
    }

    private static IEnumerable<IPtCodecSet> BuiltInSets()
    {
        yield return new RunCodecs();
    }
}
