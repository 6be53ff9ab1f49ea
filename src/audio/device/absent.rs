//! Stand-ins for a build without the `devices` feature: opening always fails with
//! [`DeviceError::NotBuilt`], so front ends run without sound and say why.

use super::{DeviceError, DeviceInfo};
use crate::audio::{AudioSink, AudioSource, FrameSize, SinkError};

/// Never constructed in this build.
pub struct DeviceSource {
    info: DeviceInfo,
}

/// Never constructed in this build.
pub struct DeviceSink {
    info: DeviceInfo,
}

impl DeviceSource {
    pub fn open(_name: Option<&str>) -> Result<Self, DeviceError> {
        Err(DeviceError::NotBuilt)
    }

    pub fn open_for(_name: Option<&str>, _frame: FrameSize) -> Result<Self, DeviceError> {
        Err(DeviceError::NotBuilt)
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn failed(&self) -> bool {
        true
    }

    pub fn buffered(&self) -> usize {
        0
    }
}

impl AudioSource for DeviceSource {
    fn next_frame(&mut self, out: &mut [f32]) {
        out.fill(0.0);
    }
}

impl DeviceSink {
    pub fn open(_name: Option<&str>) -> Result<Self, DeviceError> {
        Err(DeviceError::NotBuilt)
    }

    pub fn open_for(_name: Option<&str>, _frame: FrameSize) -> Result<Self, DeviceError> {
        Err(DeviceError::NotBuilt)
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn failed(&self) -> bool {
        true
    }

    pub fn buffered(&self) -> usize {
        0
    }
}

impl AudioSink for DeviceSink {
    fn write_frame(&mut self, _frame: &[f32]) -> Result<(), SinkError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

pub fn list_devices() -> Result<String, DeviceError> {
    Err(DeviceError::NotBuilt)
}
