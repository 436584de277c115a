# configs/multisiam_waymo.py with the JPEG decoding, view cropping and BYOL's T / T' on the GPU (issue 18, item 4):
# the data workers read each frame's bytes and draw its boxes, flips and photometric parameters with the same
# samplers and seeds as the CPU pipeline; DevicePairPreprocessor decodes the batch with nvJPEG
# (torchvision.io.decode_jpeg(device='cuda')), cuts the views and applies T / T'. Same views up to rounding
# (tests/test_device_decode.py); without a GPU it decodes on the CPU in the main process, with a log line.
#   tools/dist_train.sh configs/multisiam/multisiam_r50_8xb128-coslr-325e_waymo_device-decode.py 8
_base_ = ['../multisiam_waymo.py']
model = dict(data_preprocessor=dict(type='DevicePairPreprocessor', decode_device='auto'))
train_dataloader = dict(
    collate_fn=dict(type='pseudo_collate'),  # JPEG byte strings of different lengths do not stack
    dataset=dict(pipeline={{_base_.device_pair_pipeline}}),
)
