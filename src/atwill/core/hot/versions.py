"""HOT versions and which intrinsic functions each one offers."""

from __future__ import annotations

from .errors import InvalidTemplateVersion

# Release names Heat accepts in heat_template_version, beside the dates.
NAMES = {"newton": "2016-10-14", "ocata": "2017-02-24", "pike": "2017-09-01",
         "queens": "2018-03-02", "rocky": "2018-08-31", "wallaby": "2021-04-16"}
DATES = ("2013-05-23", "2014-10-16", "2015-04-30", "2015-10-15", "2016-04-08", "2016-10-14",
         "2017-02-24", "2017-09-01", "2018-03-02", "2018-08-31", "2021-04-16")

# The first version offering each function (Heat's HOT function tables).
FUNCTIONS = {
    "get_param": "2013-05-23", "get_resource": "2013-05-23", "get_attr": "2013-05-23",
    "str_replace": "2013-05-23", "get_file": "2013-05-23",
    "list_join": "2014-10-16", "resource_facade": "2014-10-16",
    "repeat": "2015-04-30", "digest": "2015-04-30",
    "str_split": "2015-10-15", "map_merge": "2016-10-14", "map_replace": "2016-10-14",
    "equals": "2016-10-14", "if": "2016-10-14", "yaql": "2016-10-14",
    "not": "2016-10-14", "and": "2017-02-24", "or": "2017-02-24", "filter": "2017-02-24",
    "make_url": "2017-02-24", "str_replace_strict": "2017-02-24",
    "list_concat": "2017-09-01", "contains": "2017-09-01",
    "str_replace_vstrict": "2018-03-02", "list_concat_unique": "2018-03-02",
}
# Functions a template may name that atwill does not evaluate: refused by name.
REFUSED = {"yaql": "yaql expressions are not supported by atwill's engine",
           "resource_facade": "resource_facade is not supported by atwill's engine"}
CONDITION_FUNCTIONS = ("equals", "not", "and", "or", "contains", "get_param")


def resolve(version: object) -> str:
    """The version date of heat_template_version, or Heat's refusal."""
    text = str(version).strip() if version is not None else ""
    if hasattr(version, "isoformat"):
        text = version.isoformat()  # YAML reads an unquoted 2018-08-31 as a date
    text = NAMES.get(text, text)
    if text not in DATES:
        raise InvalidTemplateVersion(
            f'The template version is invalid: "heat_template_version: {text}". '
            f'"heat_template_version" should be one of: {", ".join(DATES + tuple(NAMES))}')
    return text


def available(version: str) -> set[str]:
    """The functions a template of this version may call."""
    return {name for name, since in FUNCTIONS.items() if since <= version}


def has_conditions(version: str) -> bool:
    return version >= "2016-10-14"
