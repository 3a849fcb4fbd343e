"""Device profiles (``device_profiles/*.yaml``): what a device class is, how to recognise it,
which image recipe or native runtime it uses, its sensors, budgets and power model."""

from agent.profiles.detect import Facts, Match, detect, gather
from agent.profiles.loading import load_profile, load_profiles, profiles_dir
from agent.profiles.schema import DeviceProfile

__all__ = ["DeviceProfile", "Facts", "Match", "detect", "gather", "load_profile",
           "load_profiles", "profiles_dir"]
