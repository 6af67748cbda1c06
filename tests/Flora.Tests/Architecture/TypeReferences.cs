using System.Reflection;
using System.Reflection.Emit;

namespace Flora.Tests.Architecture;

/// <summary>
/// Every type a compiled type refers to: its base type and interfaces, the types of its fields, properties, events,
/// method signatures and locals, and every type, method or field token in its method bodies (read from the IL).
/// Nested and compiler-generated types (closures, iterators, async state machines) count as their outermost type.
/// </summary>
internal static class TypeReferences
{
    private const BindingFlags Declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance |
                                          BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    /// <summary>The outermost declaring type of <paramref name="type"/>.</summary>
    public static Type Outermost(Type type)
    {
        while (type.DeclaringType is not null) type = type.DeclaringType;
        return type;
    }

    /// <summary>(referencing type, referenced type) pairs of every type in <paramref name="assembly"/>, nested types folded into their outermost type.</summary>
    public static IEnumerable<(Type From, Type To)> Of(Assembly assembly)
    {
        foreach (var type in assembly.GetTypes())
        {
            var from = Outermost(type);
            foreach (var to in ReferencedBy(type).SelectMany(Decompose).Distinct())
                yield return (from, Outermost(to));
        }
    }

    private static IEnumerable<Type> ReferencedBy(Type type)
    {
        if (type.BaseType is not null) yield return type.BaseType;
        foreach (var i in type.GetInterfaces()) yield return i;
        foreach (var a in type.GetCustomAttributesData()) yield return a.AttributeType;
        foreach (var f in type.GetFields(Declared)) yield return f.FieldType;
        foreach (var p in type.GetProperties(Declared)) yield return p.PropertyType;
        foreach (var e in type.GetEvents(Declared)) if (e.EventHandlerType is not null) yield return e.EventHandlerType;
        foreach (MethodBase m in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
        {
            if (m is MethodInfo mi) yield return mi.ReturnType;
            foreach (var p in m.GetParameters()) yield return p.ParameterType;
            foreach (var t in InBody(m)) yield return t;
        }
    }

    /// <summary>The types behind every token in the IL of <paramref name="method"/>, and its locals.</summary>
    private static IEnumerable<Type> InBody(MethodBase method)
    {
        MethodBody? body;
        try { body = method.GetMethodBody(); }
        catch (Exception) { yield break; }
        if (body is null) yield break;
        foreach (var local in body.LocalVariables) yield return local.LocalType;
        byte[] il = body.GetILAsByteArray() ?? [];
        var module = method.Module;
        Type[]? typeArgs = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        Type[]? methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            var op = OpCodesByValue[value];
            switch (op.OperandType)
            {
                case OperandType.InlineType:
                case OperandType.InlineMethod:
                case OperandType.InlineField:
                case OperandType.InlineTok:
                    int token = BitConverter.ToInt32(il, i);
                    foreach (var t in Resolve(module, token, typeArgs, methodArgs)) yield return t;
                    i += 4;
                    break;
                case OperandType.InlineSwitch:
                    i += 4 + 4 * BitConverter.ToInt32(il, i);
                    break;
                default:
                    i += OperandSize(op.OperandType);
                    break;
            }
        }
    }

    private static IEnumerable<Type> Resolve(Module module, int token, Type[]? typeArgs, Type[]? methodArgs)
    {
        MemberInfo? member;
        try { member = module.ResolveMember(token, typeArgs, methodArgs); }
        catch (Exception) { yield break; }
        switch (member)
        {
            case Type t:
                yield return t;
                break;
            case MethodBase m:
                if (m.DeclaringType is not null) yield return m.DeclaringType;
                if (m is MethodInfo mi) yield return mi.ReturnType;
                foreach (var p in m.GetParameters()) yield return p.ParameterType;
                if (m.IsGenericMethod) foreach (var a in m.GetGenericArguments()) yield return a;
                break;
            case FieldInfo f:
                if (f.DeclaringType is not null) yield return f.DeclaringType;
                yield return f.FieldType;
                break;
        }
    }

    /// <summary>A type and the types it is built from (element types, generic arguments).</summary>
    private static IEnumerable<Type> Decompose(Type type)
    {
        if (type.IsGenericParameter) yield break;
        if (type.HasElementType)
        {
            foreach (var t in Decompose(type.GetElementType()!)) yield return t;
            yield break;
        }
        if (type.IsGenericType)
        {
            yield return type.GetGenericTypeDefinition();
            foreach (var a in type.GetGenericArguments())
                foreach (var t in Decompose(a)) yield return t;
            yield break;
        }
        yield return type;
    }

    private static int OperandSize(OperandType type) => type switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        _ => 4,
    };
}
