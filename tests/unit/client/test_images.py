import numpy as np
import pytest

from triton_vision_client.images import pack_images


def test_pack_images_zero_pads_each_row_to_the_longest_file():
    packed = pack_images([b"\x01\x02\x03", b"\x04"])
    assert packed.dtype == np.uint8
    assert packed.tolist() == [[1, 2, 3], [4, 0, 0]]


@pytest.mark.parametrize(("images", "message"), [([], "no images"), ([b"ab", b""], "image 1 is empty")])
def test_pack_images_refuses_nothing_to_send(images, message):
    with pytest.raises(ValueError, match=message):
        pack_images(images)
