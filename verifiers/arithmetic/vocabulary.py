"""Words that matter to a calculation: operator words, multipliers, units and their dimensions, risky neighbours.

The lists are deliberately conservative. A word that could change what the numbers mean ("half of", "3 more
than", "2 dozen") either takes part in the calculation explicitly or makes the claim unjudged; it is never
silently dropped, because dropping it could turn a correct sentence into a false alarm.
"""

from __future__ import annotations

__all__ = [
    "APPROX_WORDS",
    "DIMENSIONS",
    "GLUED_ONLY_MULTIPLIERS",
    "GLUED_UNITS",
    "MULTIPLIERS",
    "NOT_UNITS",
    "OPERATOR_WORDS",
    "RELATION_WORDS",
    "RISKY_AFTER",
    "RISKY_BEFORE",
    "unit_dimension",
    "unit_key",
]

# word -> canonical operator; "divided"/"multiplied" need a following "by".
OPERATOR_WORDS = {"times": "*", "plus": "+", "minus": "-", "divided": "/", "multiplied": "*"}

# "16 - 3 - 4 leaves 9", "9 * 2 makes 18": verbs that state a result as "is" does
RELATION_WORDS = {"is", "equals", "gives", "makes", "yields", "leaves"}
APPROX_WORDS = {"approximately", "approx", "about", "around", "roughly", "nearly", "almost", "circa"}

# word -> factor; a number followed by one of these may mean the product or just be a label ("2 dozen eggs").
MULTIPLIERS = {
    "dozen": 12, "dozens": 12, "hundred": 100, "hundreds": 100, "thousand": 1000, "thousands": 1000,
    "million": 10**6, "millions": 10**6, "billion": 10**9, "billions": 10**9, "trillion": 10**12,
    "k": 1000, "score": 20, "gross": 144, "pair": 2, "pairs": 2,
    # glued only ("$3.5m", "$2bn"): "m" is also metres, which the second reading (a label) covers
    "m": 10**6, "mn": 10**6, "b": 10**9, "bn": 10**9,
}
GLUED_ONLY_MULTIPLIERS = {"k", "m", "mn", "b", "bn"}

# Units written glued to a number ("3km", "5kg"); anything else glued to a number makes it unreadable.
GLUED_UNITS = {
    "km", "kg", "g", "mg", "cm", "mm", "m", "ml", "mL", "l", "L", "lb", "lbs", "oz", "ft", "yd", "mi", "mph",
    "kmh", "h", "hr", "hrs", "min", "mins", "s", "sec", "secs", "ms", "kW", "kWh", "W", "V", "mA", "A", "GB",
    "MB", "KB", "TB", "Hz", "kHz", "in", "degrees", "cents",
}

# Dimensions of units that convert into each other: a link whose sides carry different units of one
# dimension ("60 minutes = 1 hour") is a conversion, not a calculation, and is never flagged.
_DIMENSION_WORDS = {
    "time": ["second", "sec", "s", "minute", "min", "hour", "hr", "h", "day", "week", "month", "year", "yr",
             "decade", "century", "centuries", "fortnight", "ms", "millisecond"],
    "length": ["mm", "cm", "m", "km", "meter", "metre", "kilometer", "kilometre", "centimeter", "centimetre",
               "millimeter", "millimetre", "inch", "inches", "foot", "feet", "ft", "yard", "yd", "mile", "mi", "in"],
    "mass": ["g", "mg", "kg", "gram", "kilogram", "milligram", "pound", "lb", "lbs", "ounce", "oz", "ton",
             "tonne", "stone"],
    "volume": ["ml", "l", "liter", "litre", "milliliter", "millilitre", "gallon", "quart", "pint", "cup",
               "tablespoon", "teaspoon", "tbsp", "tsp", "ounce", "oz"],
    "money": ["$", "€", "£", "¥", "₹", "₩", "₽", "₺", "₦", "฿", "₱",
              "dollar", "cent", "penny", "pennies", "nickel", "dime", "quarter", "euro",
              "pound", "buck", "grand"],
    "count": ["dozen", "pair", "score", "gross", "hundred", "thousand", "million", "billion", "k"],
    "data": ["kb", "mb", "gb", "tb", "byte", "bit"],
    "speed": ["mph", "kmh"],
    "area": ["acre", "hectare"],
}
DIMENSIONS: dict[str, set[str]] = {}
for _dim, _words in _DIMENSION_WORDS.items():
    for _w in _words:
        DIMENSIONS.setdefault(_w, set()).add(_dim)

# Words that are never a unit label after a number: they carry meaning the calculation would lose.
NOT_UNITS = {
    "is", "are", "was", "were", "be", "been", "equals", "equal", "and", "or", "to", "so", "then", "the", "a", "an",
    "which", "that", "this", "these", "those", "in", "on", "for", "at", "from", "of", "by", "with", "as", "than",
    "more", "less", "fewer", "times", "plus", "minus", "divided", "multiplied", "over", "per", "each", "every",
    "squared", "cubed", "percent", "percentage", "point", "half", "halves", "third", "thirds", "quarters",
    "fourth", "fourths", "fifth", "fifths", "twice", "double", "triple", "if", "but", "when", "we", "he", "she",
    "it", "they", "i", "you", "his", "her", "their", "its", "our", "my", "your", "not", "no", "out", "up",
    "down", "left", "remaining", "total", "into", "about", "around", "approximately", "roughly", "nearly",
    "almost", "after", "before", "since", "because", "while", "where", "there", "here", "extra", "other",
    "another", "same", "until", "till", "vs", "versus", "off", "ago", "later", "earlier", "old", "older",
    "younger", "st", "nd", "rd", "th", "am", "pm", "bc", "ad", "e", "x", "y", "z", "n",
    "hence", "thus", "therefore", "would", "will", "can", "could", "should", "has", "have", "had",
    "get", "gets", "got", "makes", "make", "gives", "give", "leaves", "leave", "means", "mean",
}

# A previous word that can be part of the calculation in words ("half of 10 + 2", "3 more than 4 + 1").
RISKY_BEFORE = {
    "of", "times", "by", "than", "plus", "minus", "half", "halves", "twice", "double", "triple", "quadruple",
    "thrice", "over", "per", "into", "less", "more", "fewer", "from", "to", "with", "subtract", "subtracting",
    "add", "adding", "multiply", "multiplying", "divide", "dividing", "square", "root", "cube", "third",
    "thirds", "quarter", "quarters", "fifth", "fifths", "fourth", "fourths", "percent", "x", "y", "n",
    "excluding", "except", "without", "after", "before", "another", "extra", "additional",
    # functions written as words: "log 100 + 1" is not 100 + 1
    "log", "ln", "lg", "sin", "cos", "tan", "cot", "sec", "csc", "exp", "sqrt", "mod", "modulo", "gcd", "lcm",
    "floor", "ceil", "ceiling", "abs", "factorial", "choose", "f", "g", "h", "p", "c",
    # a sign or an inverse in words: "negative 3 + 5 = 2" is -3 + 5
    "negative", "opposite", "reciprocal", "inverse",
}

# A following word that changes what the result means ("= 5 more than", "= 3 to 4", "= 2 and 1/2").
RISKY_AFTER = {
    "more", "less", "fewer", "than", "times", "of", "out", "to", "or", "per", "plus", "minus", "over", "by",
    "point", "squared", "cubed", "percent", "divided", "multiplied", "x", "hundred", "thousand", "million",
    "billion", "dozen", "half", "halves", "third", "thirds", "quarter", "quarters", "higher", "lower",
    "greater", "smaller", "larger", "bigger", "extra", "additional", "remainder", "r", "rem", "with",
    "mod", "modulo",
}

_IRREGULAR = {"feet": "foot", "inches": "inch", "pennies": "penny", "centuries": "century", "teeth": "tooth",
              "people": "person", "children": "child", "men": "man", "women": "woman", "mice": "mouse"}


def unit_key(word: str) -> str:
    """A unit label normalised for comparison: lower case, singular ("Minutes" -> "minute")."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) > 3 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith(("ches", "shes", "sses", "xes")):
        return w[:-2]
    if len(w) > 2 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def unit_dimension(label: str) -> set[str]:
    """The dimensions a unit label belongs to (empty for a plain count noun like "apples")."""
    return DIMENSIONS.get(label, set()) | DIMENSIONS.get(label.lower(), set())
