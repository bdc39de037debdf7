"""A full disk during export is said in words, naming the output, whatever error type the converter raises."""

import pytest

from fcn.core.files import DiskFullError
from fcn.inference import export


class ResourceExhaustedError(Exception):
    """What TensorFlow's SavedModel writer raises on a full disk (its message names a TF function)."""


class FullDiskModel:
    def export(self, *args, **kwargs):
        raise ResourceExhaustedError(
            "{{function_node __wrapped__SaveV2_dtypes_79_device_/job:localhost}} m/variables.data: No space left on device"
        )


def test_savedmodel_on_a_full_disk_is_one_line_naming_the_output(tmp_path):
    target = tmp_path / "sm"
    with pytest.raises(DiskFullError) as caught:
        export._convert(FullDiskModel(), tmp_path / "raw", "saved_model", None, target)
    assert str(caught.value) == f"{target}: cannot write (No space left on device)"
