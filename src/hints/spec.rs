//! oslo.utils `specs_matcher`: the grammar of `make_grammar()` and the operators of `match()`.
//!
//! The grammar is reproduced as pyparsing runs it, quirks included, because IPA feeds it
//! every hint and every device value: `parseString` without `parseAll` (trailing text is
//! ignored), whitespace skipped before each token, an atom is any run of non-whitespace that
//! does not *start* with an operator, and the first alternative that parses wins:
//!
//! ```text
//! expr        := disjunction | nary | range | unary | atom
//! disjunction := ("<or>" atom)+          -> ["<or>", atom, atom, ...]
//! nary        := "<all-in>" atom+
//! range       := "<range-in>" atom atom atom atom
//! unary       := unary_op atom           (unary_op: first of UNARY_OPS that is a prefix)
//! ```

use super::pycompat;

/// The unary operators, in the order pyparsing tries them (`==` before `=`, `<=` before `<`).
pub(crate) const UNARY_OPS: [&str; 14] = [
    "==", "=", "!=", "<in>", ">=", "<=", ">", "<", "s==", "s!=", "s<=", "s<", "s>=", "s>",
];
const ALL_IN: &str = "<all-in>";
const OR: &str = "<or>";
const RANGE_IN: &str = "<range-in>";

/// pyparsing's default whitespace, skipped before every token.
fn skip_whitespace(s: &str, pos: usize) -> usize {
    let rest = &s[pos..];
    pos + (rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len())
}

fn literal(s: &str, pos: usize, lit: &str) -> Option<usize> {
    let start = skip_whitespace(s, pos);
    s[start..].starts_with(lit).then_some(start + lit.len())
}

/// `~(unary_ops | <all-in> | <or> | <range-in>) + Regex(r"\S+")`.
fn atom(s: &str, pos: usize) -> Option<(String, usize)> {
    let start = skip_whitespace(s, pos);
    let rest = &s[start..];
    let starts_with_operator = UNARY_OPS
        .iter()
        .chain(&[ALL_IN, OR, RANGE_IN])
        .any(|op| rest.starts_with(op));
    if starts_with_operator {
        return None;
    }
    let len = rest.find(pycompat::is_space).unwrap_or(rest.len());
    (len > 0).then(|| (rest[..len].to_string(), start + len))
}

fn disjunction(s: &str) -> Option<Vec<String>> {
    let mut tokens = vec![OR.to_string()];
    let mut pos = 0;
    while let Some((value, next)) = literal(s, pos, OR).and_then(|p| atom(s, p)) {
        tokens.push(value);
        pos = next;
    }
    (tokens.len() > 1).then_some(tokens)
}

/// An operator followed by exactly `count` atoms, or by as many as there are if `count` is None.
fn operator_and_atoms(s: &str, op: &str, count: Option<usize>) -> Option<Vec<String>> {
    let mut pos = literal(s, 0, op)?;
    let mut tokens = vec![op.to_string()];
    while count.is_none_or(|n| tokens.len() <= n) {
        match atom(s, pos) {
            Some((value, next)) => {
                tokens.push(value);
                pos = next;
            }
            None => break,
        }
    }
    let enough = match count {
        Some(n) => tokens.len() == n + 1,
        None => tokens.len() > 1,
    };
    enough.then_some(tokens)
}

fn unary(s: &str) -> Option<Vec<String>> {
    // MatchFirst: the first operator that is a prefix is taken, even if no atom follows it.
    let (op, pos) = UNARY_OPS
        .iter()
        .find_map(|op| literal(s, 0, op).map(|pos| (*op, pos)))?;
    let (value, _) = atom(s, pos)?;
    Some(vec![op.to_string(), value])
}

/// `make_grammar().parseString(s)`: the operator (if any) first, then its atoms.
/// `None` where pyparsing raises `ParseException`.
pub(crate) fn parse(s: &str) -> Option<Vec<String>> {
    disjunction(s)
        .or_else(|| operator_and_atoms(s, ALL_IN, None))
        .or_else(|| operator_and_atoms(s, RANGE_IN, Some(4)))
        .or_else(|| unary(s))
        .or_else(|| atom(s, 0).map(|(value, _)| vec![value]))
}

/// The value a spec is compared with: IPA passes strings for string hints and the device
/// size in GiB (a float) for `size`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operand<'a> {
    Str(&'a str),
    Num(f64),
}

/// Why `specs_matcher.match` would raise instead of answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incomparable(pub(crate) String);

fn to_float(value: Operand<'_>) -> Result<f64, Incomparable> {
    match value {
        Operand::Num(n) => Ok(n),
        Operand::Str(s) => as_float(s),
    }
}

fn as_float(s: &str) -> Result<f64, Incomparable> {
    pycompat::float(s).ok_or_else(|| Incomparable(format!("{s:?} is not a number")))
}

fn numeric(value: Operand<'_>, arg: &str, cmp: fn(f64, f64) -> bool) -> Result<bool, Incomparable> {
    Ok(cmp(to_float(value)?, as_float(arg)?))
}

fn string(value: Operand<'_>, op: &str, arg: &str) -> Result<bool, Incomparable> {
    let Operand::Str(value) = value else {
        // A float never equals a str in Python, and ordering them raises TypeError.
        return match op {
            "s==" => Ok(false),
            "s!=" => Ok(true),
            _ => Err(Incomparable(format!("{op} compares strings, not numbers"))),
        };
    };
    Ok(match op {
        "s==" => value == arg,
        "s!=" => value != arg,
        "s<" => value < arg,
        "s<=" => value <= arg,
        "s>" => value > arg,
        _ => value >= arg,
    })
}

/// `specs_matcher.match(value, spec)`: `Ok(matched)`, or `Err` where Python would raise.
pub(crate) fn matches(value: Operand<'_>, spec: &str) -> Result<bool, Incomparable> {
    let tree = parse(spec).unwrap_or_else(|| vec![spec.to_string()]);
    let [op, args @ ..] = tree.as_slice() else {
        return Ok(false);
    };
    if args.is_empty() {
        return Ok(matches!(value, Operand::Str(v) if v == op));
    }
    let first = args[0].as_str();
    match op.as_str() {
        // oslo's legacy quirk: `=` is numeric "greater than or equal".
        "=" | ">=" => numeric(value, first, |a, b| a >= b),
        "==" => numeric(value, first, |a, b| a == b),
        "!=" => numeric(value, first, |a, b| a != b),
        "<=" => numeric(value, first, |a, b| a <= b),
        "<" => numeric(value, first, |a, b| a < b),
        ">" => numeric(value, first, |a, b| a > b),
        "s==" | "s!=" | "s<" | "s<=" | "s>" | "s>=" => string(value, op, first),
        "<in>" => match value {
            Operand::Str(v) => Ok(v.contains(first)),
            Operand::Num(_) => Err(Incomparable("<in> needs a string".into())),
        },
        "<or>" => Ok(matches!(value, Operand::Str(v) if args.iter().any(|a| a == v))),
        // `<all-in>` runs ast.literal_eval on the value and needs a list. IPA's values are
        // URL-quoted strings (a `[` is `%5B`) or a float, so this always raises.
        ALL_IN => Err(Incomparable(
            "<all-in> needs a list literal, which a disk attribute never is".into(),
        )),
        // `<range-in>` runs ast.literal_eval on the value: a float (the size) raises, and a
        // quoted string spec never parses as `<range-in>` plus four atoms.
        _ => Err(Incomparable(
            "<range-in> cannot be evaluated on a disk attribute".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<Vec<String>> {
        parse(s)
    }

    fn toks(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|t| t.to_string()).collect())
    }

    #[test]
    fn grammar_matches_pyparsing() {
        // Each expectation was printed by oslo.utils 10.2 / pyparsing 3.3.
        assert_eq!(p("<or>"), toks(&["<", "or>"]));
        assert_eq!(p("<or> a b"), toks(&["<or>", "a"]));
        assert_eq!(p("<or> a <or> b"), toks(&["<or>", "a", "b"]));
        assert_eq!(p("==abc"), toks(&["==", "abc"]));
        assert_eq!(p("s==x"), toks(&["s==", "x"]));
        assert_eq!(p("<inx> foo"), toks(&["<", "inx>"]));
        assert_eq!(p("<range-in> 1 2 3"), toks(&["<", "range-in>"]));
        assert_eq!(
            p("<range-in> [ 1 2 ]"),
            toks(&["<range-in>", "[", "1", "2", "]"])
        );
        assert_eq!(p("<all-in> a b <in>"), toks(&["<all-in>", "a", "b"]));
        assert_eq!(p("<all-in>"), toks(&["<", "all-in>"]));
        assert_eq!(p("S== 100"), toks(&["S=="]));
        assert_eq!(p("s=x"), toks(&["s=x"]));
        assert_eq!(p("a\u{b}b"), toks(&["a"]));
        assert_eq!(p("s==\u{b}a"), None);
        assert_eq!(p("=="), None);
        assert_eq!(p("== =="), None);
        assert_eq!(p("  >=\t400 junk"), toks(&[">=", "400"]));
        assert_eq!(p("<= 5"), toks(&["<=", "5"]));
        assert_eq!(p("s<=b"), toks(&["s<=", "b"]));
        assert_eq!(p("!= 1"), toks(&["!=", "1"]));
        assert_eq!(p(""), None);
    }

    fn m(value: &str, spec: &str) -> Result<bool, Incomparable> {
        matches(Operand::Str(value), spec)
    }

    fn n(value: f64, spec: &str) -> Result<bool, Incomparable> {
        matches(Operand::Num(value), spec)
    }

    #[test]
    fn numeric_operators() {
        assert_eq!(n(10.0, "= 5"), Ok(true), "= is >= in oslo");
        assert_eq!(n(5.0, "= 5"), Ok(true));
        assert_eq!(n(4.0, "= 5"), Ok(false));
        assert_eq!(n(5.0, "== 5"), Ok(true));
        assert_eq!(n(5.5, "== 5"), Ok(false));
        assert_eq!(n(5.5, "!= 5"), Ok(true));
        assert_eq!(n(5.0, "!= 5"), Ok(false));
        assert_eq!(n(5.0, ">= 5"), Ok(true));
        assert_eq!(n(4.9, ">= 5"), Ok(false));
        assert_eq!(n(5.0, "> 5"), Ok(false));
        assert_eq!(n(5.1, "> 5"), Ok(true));
        assert_eq!(n(5.0, "<= 5"), Ok(true));
        assert_eq!(n(5.1, "<= 5"), Ok(false));
        assert_eq!(n(5.0, "< 5"), Ok(false));
        assert_eq!(n(4.9, "< 5"), Ok(true));
        assert_eq!(
            m("12", ">= 1_0"),
            Ok(true),
            "strings are converted with float()"
        );
        assert!(m("qemu", ">= 5").is_err());
        assert!(n(5.0, ">= five").is_err());
    }

    #[test]
    fn string_operators() {
        assert_eq!(m("abc", "s== abc"), Ok(true));
        assert_eq!(m("abc", "s== abd"), Ok(false));
        assert_eq!(m("abc", "s!= abd"), Ok(true));
        assert_eq!(m("abc", "s!= abc"), Ok(false));
        assert_eq!(m("abc", "s< abd"), Ok(true));
        assert_eq!(m("abd", "s< abd"), Ok(false));
        assert_eq!(m("abd", "s<= abd"), Ok(true));
        assert_eq!(m("abe", "s<= abd"), Ok(false));
        assert_eq!(m("abe", "s> abd"), Ok(true));
        assert_eq!(m("abd", "s> abd"), Ok(false));
        assert_eq!(m("abd", "s>= abd"), Ok(true));
        assert_eq!(m("abc", "s>= abd"), Ok(false));
        assert_eq!(n(1.0, "s== 1"), Ok(false), "a float never equals a str");
        assert_eq!(n(1.0, "s!= 1"), Ok(true));
        assert!(n(1.0, "s< 1").is_err());
    }

    #[test]
    fn other_operators() {
        assert_eq!(m("samsung%20ssd", "<in> ssd"), Ok(true));
        assert_eq!(m("samsung", "<in> ssd"), Ok(false));
        assert!(n(1.0, "<in> 1").is_err());
        assert_eq!(m("b", "<or> a <or> b"), Ok(true));
        assert_eq!(m("c", "<or> a <or> b"), Ok(false));
        assert_eq!(n(1.0, "<or> 1 <or> 2"), Ok(false));
        assert!(m("a", "<all-in> a").is_err());
        assert!(n(1.0, "<range-in> [ 0 2 ]").is_err());
    }

    #[test]
    fn spec_without_operator_is_plain_equality() {
        assert_eq!(m("abc", "abc"), Ok(true));
        assert_eq!(m("abc", "abd"), Ok(false));
        // Unparsable specs are compared whole.
        assert_eq!(m("==", "=="), Ok(true));
        assert_eq!(n(1.0, "1"), Ok(false));
    }
}
